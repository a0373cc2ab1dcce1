/* The test-set results of trained parameters and where they go (see results.h). */
#include "vamp/results.h"
#include "vamp/check.h"
#include "vamp/eval.h"
#include "vamp/pictures.h"
#include "vamp/runlog.h"
#include "vamp/h5io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    double ll, elbo, re, kl;
    int active_z1, active_z2;
    float *per_image_ll; /* rank 0, (n test images), or NULL when eval.samples = 0 */
    float kl_z1[4096], kl_z2[4096]; /* KL per unit of each latent layer (z2: hvae only) */
    int nz1, nz2;
} vamp_test_result;

/* Collective: test ELBO, active units and (eval.samples > 0) the importance-sampled log-likelihood. */
static vamp_test_result evaluate_test(vamp_trainer *tr, const vamp_data *data, MPI_Comm comm)
{
    vamp_test_result r;
    memset(&r, 0, sizeof r);
    vamp_elbo te = trainer_eval_elbo(tr, &data->test);
    r.elbo = -te.loss;
    r.re = te.re;
    r.kl = te.kl;
    int top, z1;
    eval_active_units(tr, &data->test, &top, &z1);
    r.active_z1 = tr->model.hvae ? z1 : top;
    r.active_z2 = tr->model.hvae ? top : 0;
    double *kt = xmalloc((size_t)tr->model.Ztop * sizeof(double)), *k1 = xmalloc((size_t)(tr->model.Z1 + 1) * sizeof(double));
    eval_kl_per_unit(tr, &data->test, kt, k1);
    r.nz1 = tr->model.hvae ? tr->model.Z1 : tr->model.Ztop;
    r.nz2 = tr->model.hvae ? tr->model.Ztop : 0;
    for (int u = 0; u < r.nz1; u++) r.kl_z1[u] = (float)(tr->model.hvae ? k1[u] : kt[u]);
    for (int u = 0; u < r.nz2; u++) r.kl_z2[u] = (float)kt[u];
    free(kt);
    free(k1);
    r.ll = NAN;
    if (tr->cfg.eval_samples > 0) {
        log0(comm, "test log-likelihood: %ld images x %d importance samples\n", data->test.n, tr->cfg.eval_samples);
        if (tr->rank == 0) r.per_image_ll = xmalloc((size_t)data->test.n * sizeof(float));
        r.ll = eval_log_likelihood(tr, &data->test, tr->cfg.eval_samples, config_eval_block(&tr->cfg), r.per_image_ll, 1);
    }
    return r;
}

/* The arrays of a result that go into final.h5 / eval.h5 beside the parameters. */
static int result_extras(const vamp_test_result *r, long n_test, vamp_extra *extra)
{
    int n = 0;
    extra[n++] = (vamp_extra){"eval/kl_per_unit_z1", r->kl_z1, (size_t)r->nz1};
    if (r->nz2) extra[n++] = (vamp_extra){"eval/kl_per_unit_z2", r->kl_z2, (size_t)r->nz2};
    if (r->per_image_ll) extra[n++] = (vamp_extra){"eval/test_ll", r->per_image_ll, (size_t)n_test};
    return n;
}

static void print_results(MPI_Comm comm, const vamp_test_result *r)
{
    if (isnan(r->ll)) log0(comm, "test_ll = nan (eval.samples = 0: not computed)\n");
    else log0(comm, "test_ll = %.4f\n", r->ll);
    log0(comm, "test_elbo = %.4f\ntest_re = %.4f\ntest_kl = %.4f\nactive_units_z1 = %d\nactive_units_z2 = %d\n",
         r->elbo, r->re, r->kl, r->active_z1, r->active_z2);
    const float *kl[2] = {r->kl_z1, r->kl_z2};
    int nz[2] = {r->nz1, r->nz2};
    for (int l = 0; l < 2; l++) {
        if (!nz[l]) continue;
        log0(comm, "kl_per_unit_z%d =", l + 1);
        for (int u = 0; u < nz[l]; u++) log0(comm, " %.2f", kl[l][u]);
        log0(comm, "\n");
    }
}

/* Rank 0: the results stored in a parameter file, printed as at the end of training. 0, or -1 if one is missing. */
static int print_saved(const vamp_trainer *tr, hid_t f)
{
    vamp_test_result r;
    memset(&r, 0, sizeof r);
    double az1 = 0, az2 = 0, ep = 0, best = 0, secs = 0;
    if (h5_attr_read_double(f, "test_ll", &r.ll) || h5_attr_read_double(f, "test_elbo", &r.elbo) ||
        h5_attr_read_double(f, "test_re", &r.re) || h5_attr_read_double(f, "test_kl", &r.kl) ||
        h5_attr_read_double(f, "active_units_z1", &az1) || h5_attr_read_double(f, "active_units_z2", &az2) ||
        h5_attr_read_double(f, "epochs", &ep) || h5_attr_read_double(f, "best_epoch", &best) ||
        h5_attr_read_double(f, "train_seconds", &secs))
        return -1;
    r.active_z1 = (int)az1;
    r.active_z2 = (int)az2;
    r.nz1 = tr->model.hvae ? tr->model.Z1 : tr->model.Ztop;
    r.nz2 = tr->model.hvae ? tr->model.Ztop : 0;
    hsize_t want[1] = {(hsize_t)r.nz1}, found[H5IO_MAX_DIMS];
    int nd;
    if (h5_dataset_read_f32(f, "eval/kl_per_unit_z1", 1, want, r.kl_z1, &nd, found) != 0) return -1;
    want[0] = (hsize_t)r.nz2;
    if (r.nz2 && h5_dataset_read_f32(f, "eval/kl_per_unit_z2", 1, want, r.kl_z2, &nd, found) != 0) return -1;
    print_results(MPI_COMM_SELF, &r);
    printf("epochs = %d\nbest_epoch = %d\ntrain_seconds = %.1f\n", (int)ep, (int)best, secs);
    fflush(stdout);
    return 0;
}

int results_saved(const vamp_trainer *tr, const char *path, const char *ini, long step, int over)
{
    int finished = 0;
    if (tr->rank == 0 && access(path, R_OK) == 0) {
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        char *cfg = f >= 0 ? h5_attr_read_string(f, "config") : NULL;
        double steps = -1;
        if (cfg && !strcmp(cfg, ini) && h5_attr_read_double(f, "steps", &steps) == 0 && (over || step <= (long)steps)) {
            printf("%s holds the results of this configuration: training is over (step %.0f); nothing to do (to "
                   "train again: --resume none, or another run.dir). Its results:\n", path, steps);
            finished = print_saved(tr, f) == 0;
            if (!finished) printf("(%s lacks some results: evaluating again)\n", path);
        }
        free(cfg);
        if (f >= 0) H5Fclose(f);
    }
    CHECK_MPI(MPI_Bcast(&finished, 1, MPI_INT, 0, tr->comm));
    return finished;
}

void results_finish_pictures(vamp_trainer *tr, const vamp_data *data, const char *path, const char *dir)
{
    if (tr->cfg.pictures == PICTURES_NO) return;
    char pics[VAMP_FILE_PATH_LEN + 16];
    snprintf(pics, sizeof pics, "%s/pictures.h5", dir);
    int missing = tr->rank == 0 && access(pics, F_OK) != 0;
    CHECK_MPI(MPI_Bcast(&missing, 1, MPI_INT, 0, tr->comm));
    if (!missing) return;
    log0(tr->comm, "%s is missing (the run stopped while they were drawn): drawing the pictures of %s\n", pics, path);
    params_read(path, &tr->model.layout, tr->params, tr->comm);
    pictures_write(tr, data, dir, "");
}

void results_write(vamp_trainer *tr, const vamp_data *data, const char *ini, const vamp_attr *more, int nmore,
                   const char *path, const char *pic_dir, const char *pic_prefix)
{
    MPI_Comm comm = tr->comm;
    vamp_test_result r = evaluate_test(tr, data, comm);
    vamp_attr attrs[16] = {{"test_ll", r.ll, 0}, {"test_elbo", r.elbo, 0}, {"test_re", r.re, 0}, {"test_kl", r.kl, 0},
                           {"active_units_z1", r.active_z1, 1}, {"active_units_z2", r.active_z2, 1}};
    int nattrs = 6; /* the test attributes above, then the caller's */
    for (int i = 0; i < nmore && nattrs < 16; i++) attrs[nattrs++] = more[i];
    vamp_extra extra[3];
    int nextra = result_extras(&r, data->test.n, extra);
    params_write(path, &tr->model.layout, tr->params, ini, attrs, nattrs, extra, nextra, comm);
    log0(comm, "wrote %s\n", path);
    if (tr->cfg.pictures == PICTURES_YES) pictures_write(tr, data, pic_dir, pic_prefix);
    else log0(comm, "no pictures (eval.pictures = no)\n");
    print_results(comm, &r);
    free(r.per_image_ll);
}

