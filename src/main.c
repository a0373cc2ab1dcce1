/* vamp_mpi: trains a VAE/HVAE with a VampPrior (or a standard / MoG prior) data-parallel over MPI, or
 * evaluates a trained one (--eval). Only wiring: arguments -> config -> data -> trainer -> epoch loop with
 * early stopping -> test evaluation -> final.h5. */
#include "vamp/check.h"
#include "vamp/checkpoint.h"
#include "vamp/config.h"
#include "vamp/data.h"
#include "vamp/eval.h"
#include "vamp/pictures.h"
#include "vamp/runlog.h"
#include "vamp/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define VAMP_VERSION "0.1.0"
#define MAX_SETS 256

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mpirun -np P vamp_mpi CONFIG.ini [--set section.key=value]...\n"
            "       mpirun -np P vamp_mpi --eval RUN_DIR_OR_PARAMS.h5 [CONFIG.ini] [--set section.key=value]...\n"
            "       vamp_mpi --help | --version\n"
            "\n"
            "Trains the VAE / two-level HVAE of Tomczak & Welling (2018) with a standard, MoG or VampPrior prior on\n"
            "the HDF5 dataset named by data.path (made by vamp_prepare), data-parallel over the MPI ranks.\n"
            "Every key, its default and range: configs/README.md. Writes to run.dir: config.ini (resolved\n"
            "configuration), metrics.csv (one row per epoch), final.h5 (best parameters, torch state_dict names,\n"
            "test metrics as attributes). The last lines printed are `key = value` results (test_elbo, ...).\n"
            "\n"
            "options:\n"
            "  --set section.key=value  override one configuration key (repeatable; wins over the file)\n"
            "  --eval PATH              evaluate saved parameters (RUN_DIR/final.h5 or a file) on the test set\n"
            "                           without training; config from CONFIG.ini, else config.ini beside them;\n"
            "                           writes eval.h5 beside the parameters\n"
            "  --help                   this text\n"
            "  --version                program version\n"
            "\n"
            "exit status: 0 done; 1 runtime failure (e.g. a file could not be written); 2 bad input (config,\n"
            "data or parameter file; nothing was written)\n");
}

typedef struct {
    const char *cfg_path;  /* CONFIG.ini (NULL: with --eval, config.ini beside the parameters) */
    const char *eval_path; /* --eval PATH, or NULL to train */
    const char *sets[MAX_SETS];
    int nset;
} vamp_args;

static void parse_args(vamp_args *a, int argc, char **argv, MPI_Comm comm)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        if (!strcmp(argv[i], "--set") || !strcmp(argv[i], "--eval")) {
            if (i + 1 >= argc) vamp_input_error(comm, "%s needs an argument (see vamp_mpi --help)", argv[i]);
            v = argv[i + 1];
        }
        if (!strcmp(argv[i], "--set") || !strncmp(argv[i], "--set=", 6)) {
            if (a->nset == MAX_SETS) vamp_input_error(comm, "more than %d --set options", MAX_SETS);
            a->sets[a->nset++] = v ? v : argv[i] + 6;
            if (v) i++;
        } else if (!strcmp(argv[i], "--eval")) {
            a->eval_path = v;
            i++;
        } else if (argv[i][0] == '-') {
            vamp_input_error(comm, "unknown option \"%s\" (see vamp_mpi --help)", argv[i]);
        } else if (a->cfg_path) {
            vamp_input_error(comm, "more than one config file given: \"%s\" and \"%s\"", a->cfg_path, argv[i]);
        } else {
            a->cfg_path = argv[i];
        }
    }
    if (!a->cfg_path && !a->eval_path)
        vamp_input_error(comm, "no config file given (usage: vamp_mpi CONFIG.ini [--set k=v]...; see --help)");
}

/* --eval PATH: a run directory means PATH/final.h5; the config defaults to config.ini beside the parameters. */
static void eval_paths(const char *eval_path, char *params, char *cfg, size_t len)
{
    struct stat st;
    if (stat(eval_path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(params, len, "%s/final.h5", eval_path);
        snprintf(cfg, len, "%s/config.ini", eval_path);
    } else {
        snprintf(params, len, "%s", eval_path);
        const char *slash = strrchr(eval_path, '/');
        if (slash) snprintf(cfg, len, "%.*s/config.ini", (int)(slash - eval_path), eval_path);
        else snprintf(cfg, len, "config.ini");
    }
}

typedef struct {
    double ll, elbo, re, kl;
    int active_z1, active_z2;
    float *per_image_ll; /* rank 0, (n test images), or NULL when eval.samples = 0 */
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
    eval_active_units(tr, &data->test, &top, &z1, NULL, NULL);
    r.active_z1 = tr->model.hvae ? z1 : top;
    r.active_z2 = tr->model.hvae ? top : 0;
    r.ll = NAN;
    if (tr->cfg.eval_samples > 0) {
        log0(comm, "test log-likelihood: %ld images x %d importance samples\n", data->test.n, tr->cfg.eval_samples);
        if (tr->rank == 0) r.per_image_ll = xmalloc((size_t)data->test.n * sizeof(float));
        r.ll = eval_log_likelihood(tr, &data->test, tr->cfg.eval_samples, tr->cfg.eval_block, r.per_image_ll, 1);
    }
    return r;
}

static void print_results(MPI_Comm comm, const vamp_test_result *r)
{
    if (isnan(r->ll)) log0(comm, "test_ll = nan (eval.samples = 0: not computed)\n");
    else log0(comm, "test_ll = %.4f\n", r->ll);
    log0(comm, "test_elbo = %.4f\ntest_re = %.4f\ntest_kl = %.4f\nactive_units_z1 = %d\nactive_units_z2 = %d\n",
         r->elbo, r->re, r->kl, r->active_z1, r->active_z2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) { /* before MPI_Init, so --help works anywhere */
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("vamp_mpi %s\n", VAMP_VERSION);
            return 0;
        }
    }
    CHECK_MPI(MPI_Init(&argc, &argv));
    MPI_Comm comm = MPI_COMM_WORLD;
    int rank, size;
    CHECK_MPI(MPI_Comm_rank(comm, &rank));
    CHECK_MPI(MPI_Comm_size(comm, &size));

    vamp_args args;
    parse_args(&args, argc, argv, comm);
    char params_path[1100] = "", eval_cfg[1100] = "";
    if (args.eval_path) {
        eval_paths(args.eval_path, params_path, eval_cfg, sizeof params_path);
        if (!args.cfg_path) args.cfg_path = eval_cfg;
    }

    vamp_config cfg;
    char err[2048];
    if (config_load(&cfg, args.cfg_path, args.sets, args.nset, err, sizeof err) != 0) vamp_input_error(comm, "%s", err);
    if (config_validate(&cfg, size, err, sizeof err) != 0) vamp_input_error(comm, "%s", err);
    static char ini[65536];
    if (config_to_ini(&cfg, ini, sizeof ini) < 0) vamp_fatal(__FILE__, __LINE__, "config_to_ini", "buffer too small");

    vamp_data data;
    data_load(&data, &cfg, comm); /* every input check happens before anything is written */
    vamp_trainer tr;
    if (args.eval_path) {
        trainer_init(&tr, &cfg, &data, comm);
        params_read(params_path, &tr.model.layout, tr.params, comm);
        log0(comm, "vamp_mpi %s: evaluating %s on %ld test images, %d rank(s)\n", VAMP_VERSION, params_path,
             data.test.n, size);
        vamp_test_result r = evaluate_test(&tr, &data, comm);
        vamp_attr attrs[] = {{"test_ll", r.ll}, {"test_elbo", r.elbo}, {"test_re", r.re}, {"test_kl", r.kl},
                             {"active_units_z1", r.active_z1}, {"active_units_z2", r.active_z2}};
        vamp_extra extra = {"eval/test_ll", r.per_image_ll, (size_t)data.test.n};
        char out[1200];
        const char *slash = strrchr(params_path, '/');
        if (slash) snprintf(out, sizeof out, "%.*s/eval.h5", (int)(slash - params_path), params_path);
        else snprintf(out, sizeof out, "eval.h5");
        params_write(out, &tr.model.layout, tr.params, ini, attrs, 6, &extra, r.per_image_ll ? 1 : 0, comm);
        log0(comm, "wrote %s\n", out);
        char dir[1100];
        if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - params_path), params_path);
        else snprintf(dir, sizeof dir, ".");
        pictures_write(&tr, &data, dir, "eval_");
        print_results(comm, &r);
        free(r.per_image_ll);
        trainer_free(&tr);
        data_free(&data);
        CHECK_MPI(MPI_Finalize());
        return 0;
    }

    run_dir_prepare(cfg.run_dir, ini, comm);
    log0(comm, "vamp_mpi %s: %d rank(s), config %s\n%s", VAMP_VERSION, size, args.cfg_path, ini);
    log0(comm, "data: %s (%s, %dx%d): train %ld, valid %ld, test %ld images\n", cfg.data_path,
         data.binary ? "binary" : "gray", data.height, data.width, data.train.n, data.valid.n, data.test.n);
    trainer_init(&tr, &cfg, &data, comm);
    const size_t N = tr.model.layout.total;
    log0(comm, "model: %s, prior %s, likelihood %s, %zu parameters in %d tensors; %ld steps per epoch\n",
         config_model_name(cfg.model_type), config_prior_name(cfg.prior), config_likelihood_name(cfg.likelihood), N,
         tr.model.layout.n, tr.steps_per_epoch);

    vamp_metrics metrics;
    metrics_open(&metrics, cfg.run_dir, comm);
    float *best = xmalloc(N * sizeof(float));
    memcpy(best, tr.params, N * sizeof(float));
    double best_val = INFINITY;
    int best_epoch = 0, since_best = 0, epoch;
    double t_start = wall_seconds();
    int done = 0;
    for (epoch = 1; epoch <= cfg.epochs && !done; epoch++) {
        double t0 = wall_seconds();
        double sl = 0, sre = 0, skl = 0;
        long nsteps = 0;
        for (long it = 0; it < tr.steps_per_epoch; it++) {
            vamp_elbo e = trainer_step(&tr, epoch, it);
            if (!isfinite(e.loss))
                vamp_exit_error(comm, 1, "epoch %d step %ld: training loss is %g (re %g, kl %g); stopping", epoch,
                                tr.step, e.loss, e.re, e.kl);
            sl += e.loss;
            sre += e.re;
            skl += e.kl;
            nsteps++;
            if (cfg.max_steps > 0 && tr.step >= cfg.max_steps) {
                done = 1;
                break;
            }
        }
        double train_secs = wall_seconds() - t0;
        vamp_elbo v = trainer_eval_elbo(&tr, &data.valid);
        double secs = wall_seconds() - t0;
        float beta = trainer_beta(&cfg, epoch);
        metrics_row(&metrics, epoch, tr.step, beta, sl / nsteps, sre / nsteps, skl / nsteps, v.loss, v.re, v.kl,
                    secs, nsteps * (double)cfg.batch_size / train_secs);
        log0(comm, "epoch %4d  step %7ld  beta %.3f  train %.3f (re %.3f kl %.3f)  valid %.3f (re %.3f kl %.3f)  %.1fs\n",
             epoch, tr.step, beta, sl / nsteps, sre / nsteps, skl / nsteps, v.loss, v.re, v.kl, secs);
        /* early stopping as the reference: keep the best validation loss; the counter stays 0 during warm-up */
        if (v.loss < best_val) {
            best_val = v.loss;
            best_epoch = epoch;
            since_best = 0;
            memcpy(best, tr.params, N * sizeof(float));
        } else {
            since_best++;
            if (epoch < cfg.warmup) since_best = 0;
            if (cfg.patience > 0 && since_best > cfg.patience) {
                log0(comm, "early stopping: no improvement of the validation loss for %d epochs\n", since_best);
                done = 1;
            }
        }
    }
    int epochs_run = epoch - 1;
    double train_seconds = wall_seconds() - t_start;
    metrics_close(&metrics);

    memcpy(tr.params, best, N * sizeof(float)); /* evaluate the best parameters */
    log0(comm, "evaluating the parameters of epoch %d on %ld test images\n", best_epoch, data.test.n);
    vamp_test_result r = evaluate_test(&tr, &data, comm);
    vamp_attr attrs[] = {{"test_ll", r.ll},          {"test_elbo", r.elbo},
                         {"test_re", r.re},          {"test_kl", r.kl},
                         {"active_units_z1", r.active_z1}, {"active_units_z2", r.active_z2},
                         {"epochs", epochs_run},     {"best_epoch", best_epoch},
                         {"steps", (double)tr.step}, {"train_seconds", train_seconds},
                         {"best_val_loss", best_val}};
    vamp_extra extra = {"eval/test_ll", r.per_image_ll, (size_t)data.test.n};
    char path[1100];
    snprintf(path, sizeof path, "%s/final.h5", cfg.run_dir);
    params_write(path, &tr.model.layout, tr.params, ini, attrs, (int)(sizeof attrs / sizeof attrs[0]), &extra,
                 r.per_image_ll ? 1 : 0, comm);
    log0(comm, "wrote %s\n", path);
    pictures_write(&tr, &data, cfg.run_dir, "");
    print_results(comm, &r);
    log0(comm, "epochs = %d\nbest_epoch = %d\ntrain_seconds = %.1f\n", epochs_run, best_epoch, train_seconds);

    free(r.per_image_ll);
    free(best);
    trainer_free(&tr);
    data_free(&data);
    CHECK_MPI(MPI_Finalize());
    return 0;
}
