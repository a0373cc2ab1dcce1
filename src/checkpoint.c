/* Parameter files (final.h5, rank 0, serial HDF5) and training checkpoints (all ranks, parallel HDF5), both
 * written under a temporary name and renamed into place; see checkpoint.h for the formats. */
#include "vamp/checkpoint.h"
#include "vamp/check.h"
#include "vamp/provenance.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static int write_string_attr(hid_t loc, const char *name, const char *value)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    if (type < 0) return -1;
    int ok = H5Tset_size(type, strlen(value) + 1) >= 0;
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = space >= 0 ? H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
    ok = ok && attr >= 0 && H5Awrite(attr, type, value) >= 0;
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    H5Tclose(type);
    return ok ? 0 : -1;
}

static int write_double_attr(hid_t loc, const char *name, double value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = space >= 0 ? H5Acreate2(loc, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int ok = attr >= 0 && H5Awrite(attr, H5T_NATIVE_DOUBLE, &value) >= 0;
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    return ok ? 0 : -1;
}

/* Returns 0 on success; on failure the temporary file is removed. */
static int write_file(const char *tmp, const vamp_layout *l, const float *params, const char *config_ini,
                      const vamp_provenance *prov, const vamp_attr *attrs, int nattrs, const vamp_extra *extra,
                      int nextra)
{
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return -1;
    int ok = write_string_attr(f, "format", VAMP_PARAMS_FORMAT) == 0 &&
             write_double_attr(f, "version", VAMP_PARAMS_VERSION) == 0 &&
             write_string_attr(f, "config", config_ini) == 0 && provenance_write_attrs(f, prov) == 0;
    for (int i = 0; ok && i < nattrs; i++) ok = write_double_attr(f, attrs[i].key, attrs[i].value) == 0;
    hid_t g = ok ? H5Gcreate2(f, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    ok = ok && g >= 0;
    for (int i = 0; ok && i < l->n; i++) {
        const vamp_tensor *t = &l->t[i];
        hsize_t dims[2] = {t->shape[0], t->shape[1]};
        hid_t space = H5Screate_simple(t->ndim, dims, NULL);
        hid_t ds = space >= 0 ? H5Dcreate2(g, t->name, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
                              : -1;
        ok = ds >= 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, params + t->offset) >= 0;
        if (ds >= 0) H5Dclose(ds);
        if (space >= 0) H5Sclose(space);
    }
    if (g >= 0) H5Gclose(g);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    ok = ok && lcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0;
    for (int i = 0; ok && i < nextra; i++) {
        hsize_t dims[1] = {extra[i].n};
        hid_t space = H5Screate_simple(1, dims, NULL);
        hid_t ds = space >= 0 ? H5Dcreate2(f, extra[i].name, H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT)
                              : -1;
        ok = ds >= 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, extra[i].data) >= 0;
        if (ds >= 0) H5Dclose(ds);
        if (space >= 0) H5Sclose(space);
    }
    if (lcpl >= 0) H5Pclose(lcpl);
    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) ok = 0;
    if (H5Fclose(f) < 0) ok = 0;
    if (!ok) unlink(tmp);
    return ok ? 0 : -1;
}

void params_write(const char *path, const vamp_layout *l, const float *params, const char *config_ini,
                  const vamp_attr *attrs, int nattrs, const vamp_extra *extra, int nextra, MPI_Comm comm)
{
    int rank;
    CHECK_MPI(MPI_Comm_rank(comm, &rank));
    vamp_provenance prov;
    provenance_collect(&prov, comm);
    char msg[1200] = "";
    if (rank == 0) {
        char tmp[1100];
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
        vamp_h5_quiet();
        if (write_file(tmp, l, params, config_ini, &prov, attrs, nattrs, extra, nextra) != 0)
            snprintf(msg, sizeof msg, "cannot write \"%s\" (disk full or directory not writable?); "
                     "any previous file there is unchanged", path);
        else if (rename(tmp, path) != 0) {
            snprintf(msg, sizeof msg, "cannot rename \"%s\" to \"%s\": %s", tmp, path, strerror(errno));
            unlink(tmp);
        }
    }
    CHECK_MPI(MPI_Bcast(msg, sizeof msg, MPI_CHAR, 0, comm));
    if (msg[0]) vamp_exit_error(comm, 1, "%s", msg);
}

void params_read(const char *path, const vamp_layout *l, float *params, MPI_Comm comm)
{
    vamp_h5_quiet();
    if (access(path, R_OK) != 0)
        vamp_input_error(comm, "cannot open parameter file \"%s\": %s", path, strerror(errno));
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) vamp_input_error(comm, "\"%s\" is not an HDF5 file", path);
    for (int i = 0; i < l->n; i++) {
        const vamp_tensor *t = &l->t[i];
        char name[VAMP_NAME_LEN + 16];
        snprintf(name, sizeof name, "params/%s", t->name);
        if (H5Lexists(f, "params", H5P_DEFAULT) <= 0 || H5Lexists(f, name, H5P_DEFAULT) <= 0)
            vamp_input_error(comm, "%s: dataset /%s is missing (was the file written for another model/prior?)",
                             path, name);
        hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
        hid_t space = H5Dget_space(ds);
        hsize_t dims[2] = {0, 1};
        int nd = H5Sget_simple_extent_ndims(space);
        if (nd < 1 || nd > 2) vamp_input_error(comm, "%s: dataset /%s has rank %d, expected %d", path, name, nd, t->ndim);
        H5Sget_simple_extent_dims(space, dims, NULL);
        if (nd != t->ndim || dims[0] != t->shape[0] || (nd == 2 && dims[1] != t->shape[1]))
            vamp_input_error(comm, "%s: dataset /%s has shape %llux%llu, the model needs %zux%zu", path, name,
                             (unsigned long long)dims[0], (unsigned long long)(nd == 2 ? dims[1] : 1),
                             t->shape[0], t->shape[1]);
        CHECK_H5(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, params + t->offset));
        H5Sclose(space);
        H5Dclose(ds);
    }
    H5Fclose(f);
}

/* ---- training checkpoints (collective, parallel HDF5) ------------------------------------------------------ */

static const char *const CKPT_GROUPS[] = {"params", "adam_m", "adam_v", "best"};

static uint32_t crc_of(const float *x, size_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    const unsigned char *b = (const unsigned char *)x;
    size_t bytes = n * sizeof(float);
    while (bytes) { /* crc32 takes a uInt length */
        uInt k = bytes > (1u << 30) ? (1u << 30) : (uInt)bytes;
        c = crc32(c, b, k);
        b += k;
        bytes -= k;
    }
    return (uint32_t)c;
}

/* Collective. The CRC-32 of the whole layout when every rank holds only the tensors it owns (the owned ranges
 * are contiguous and in rank order): each rank's CRC of its range, combined in rank order. */
static uint32_t crc_of_owned(const float *buf, const vamp_reducer *owned, int rank, int size, MPI_Comm comm)
{
    unsigned long long mine[2] = {crc_of(buf, (size_t)owned->counts[rank]),
                                  (unsigned long long)owned->counts[rank] * sizeof(float)};
    unsigned long long *all = xmalloc((size_t)size * sizeof mine);
    CHECK_MPI(MPI_Allgather(mine, 2, MPI_UNSIGNED_LONG_LONG, all, 2, MPI_UNSIGNED_LONG_LONG, comm));
    uLong c = crc32(0L, Z_NULL, 0);
    for (int q = 0; q < size; q++) c = crc32_combine(c, (uLong)all[2 * q], (z_off_t)all[2 * q + 1]);
    free(all);
    return (uint32_t)c;
}

/* The progress fields and counters stored as double attributes (exact for the integers involved). */
typedef struct {
    const char *name;
    double value;
} named_value;

static int progress_values(named_value *v, const vamp_trainer *t, const vamp_progress *p)
{
    int n = 0;
    v[n++] = (named_value){"step", (double)t->step};
    v[n++] = (named_value){"adam_step", (double)t->opt.step};
    v[n++] = (named_value){"epoch", p->epoch};
    v[n++] = (named_value){"it", (double)p->it};
    v[n++] = (named_value){"sum_loss", p->sum_loss};
    v[n++] = (named_value){"sum_re", p->sum_re};
    v[n++] = (named_value){"sum_kl", p->sum_kl};
    v[n++] = (named_value){"nsteps", (double)p->nsteps};
    v[n++] = (named_value){"epoch_seconds", p->epoch_seconds};
    v[n++] = (named_value){"best_val", p->best_val};
    v[n++] = (named_value){"best_epoch", p->best_epoch};
    v[n++] = (named_value){"since_best", p->since_best};
    v[n++] = (named_value){"train_seconds", p->train_seconds};
    return n;
}

/* Collective: create group `gname` with every tensor of l. buf holds the whole layout and this rank writes its
 * rows of each tensor; or, with `owned`, buf holds only the tensors this rank owns (element i at
 * buf[i - owned->displs[rank]]) and it writes those whole. 0 or -1. */
static int write_group(hid_t f, const char *gname, const vamp_layout *l, const float *buf, const vamp_reducer *owned,
                       int rank, int size)
{
    hid_t g = H5Gcreate2(f, gname, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return -1;
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    int ok = dxpl >= 0 && H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) >= 0;
    for (int i = 0; ok && i < l->n; i++) {
        const vamp_tensor *t = &l->t[i];
        hsize_t dims[2] = {t->shape[0], t->shape[1]};
        hid_t fs = H5Screate_simple(t->ndim, dims, NULL);
        hid_t ds = fs >= 0 ? H5Dcreate2(g, t->name, H5T_IEEE_F32LE, fs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
        hsize_t lo = t->shape[0] * rank / size, hi = t->shape[0] * (rank + 1) / size;
        const float *src = buf + t->offset + lo * t->shape[1];
        if (owned) {
            const int mine = i >= owned->t_lo && i < owned->t_hi;
            lo = 0;
            hi = mine ? t->shape[0] : 0;
            src = mine ? buf + (t->offset - (size_t)owned->displs[rank]) : buf;
        }
        hsize_t start[2] = {lo, 0}, count[2] = {hi - lo, t->shape[1]};
        hid_t ms = H5Screate_simple(t->ndim, count[0] ? count : (hsize_t[2]){1, 1}, NULL);
        ok = ds >= 0 && ms >= 0;
        if (ok && count[0]) ok = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0;
        else if (ok) ok = H5Sselect_none(fs) >= 0 && H5Sselect_none(ms) >= 0;
        if (ok) ok = H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, dxpl, src) >= 0;
        if (ms >= 0) H5Sclose(ms);
        if (ds >= 0) H5Dclose(ds);
        if (fs >= 0) H5Sclose(fs);
    }
    if (dxpl >= 0) H5Pclose(dxpl);
    H5Gclose(g);
    return ok ? 0 : -1;
}

static int write_u32_attr(hid_t loc, const char *name, uint32_t v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = sp >= 0 ? H5Acreate2(loc, name, H5T_STD_U32LE, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int ok = a >= 0 && H5Awrite(a, H5T_NATIVE_UINT32, &v) >= 0;
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    return ok ? 0 : -1;
}

/* Rank 0: write `text` to dir/name atomically. */
static int write_pointer(const char *dir, const char *name, const char *text)
{
    char path[1200], tmp[1300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int ok = f && fprintf(f, "%s\n", text) > 0;
    if (f && fclose(f) != 0) ok = 0;
    if (ok && rename(tmp, path) != 0) ok = 0;
    if (!ok) unlink(tmp);
    return ok ? 0 : -1;
}

static int read_pointer(const char *dir, const char *name, char *out, size_t len)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int ok = fgets(out, (int)len, f) != NULL;
    fclose(f);
    if (!ok) return -1;
    out[strcspn(out, "\n")] = '\0';
    return out[0] ? 0 : -1;
}

static long ckpt_step_of(const char *name)
{
    long step;
    char tail[8];
    if (sscanf(name, "ckpt-%ld.h5%7s", &step, tail) == 1) return step;
    return -1;
}

int checkpoint_list(const char *dir, char (*paths)[1100], int max)
{
    long steps[VAMP_CKPT_MAX];
    int n = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max && n < VAMP_CKPT_MAX) {
        long s = ckpt_step_of(e->d_name);
        if (s < 0) continue;
        steps[n] = s;
        snprintf(paths[n], 1100, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* newest (highest step) first */
        for (int j = i; j > 0 && steps[j] > steps[j - 1]; j--) {
            long ts = steps[j];
            steps[j] = steps[j - 1];
            steps[j - 1] = ts;
            char tp[1100];
            memcpy(tp, paths[j], 1100);
            memcpy(paths[j], paths[j - 1], 1100);
            memcpy(paths[j - 1], tp, 1100);
        }
    char latest[1100];
    if (read_pointer(dir, "latest", latest, sizeof latest) == 0) /* the pointer wins if it names a listed file */
        for (int i = 1; i < n; i++) {
            const char *base = strrchr(paths[i], '/') + 1;
            if (strcmp(base, latest) == 0) {
                char tp[1100];
                memcpy(tp, paths[i], 1100);
                memmove(paths[1], paths[0], (size_t)i * 1100);
                memcpy(paths[0], tp, 1100);
                break;
            }
        }
    return n;
}

void checkpoint_write(const vamp_trainer *t, const vamp_progress *p, const char *config_ini, int is_best)
{
    MPI_Comm comm = t->comm;
    const vamp_layout *l = &t->model.layout;
    const float *bufs[4] = {t->params, t->adam_m, t->adam_v, t->best};
    /* the Adam moments are sharded: each rank holds and writes the tensors it owns */
    const vamp_reducer *owned[4] = {NULL, &t->red, &t->red, NULL};
    uint32_t crcs[4]; /* before any file work: the owned CRCs are collective, whatever happens to the file */
    for (int g = 0; g < 4; g++)
        crcs[g] = owned[g] ? crc_of_owned(bufs[g], owned[g], t->rank, t->size, comm) : crc_of(bufs[g], l->total);
    vamp_provenance prov;
    provenance_collect(&prov, comm);
    const char *dir = t->cfg.run_dir;
    char name[64], path[1200], tmp[1300];
    snprintf(name, sizeof name, "ckpt-%08ld.h5", t->step);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    vamp_h5_quiet();

    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    CHECK_H5(fapl);
    CHECK_H5(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL));
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    int ok = f >= 0;
    if (ok && getenv("VAMP_INJECT_CKPT_FAILURE")) ok = 0; /* tests: a write that fails like a full disk */
    /* attributes are collective metadata: every rank writes the same values */
    ok = ok && write_string_attr(f, "format", VAMP_CKPT_FORMAT) == 0 &&
         write_double_attr(f, "version", VAMP_CKPT_VERSION) == 0 && write_string_attr(f, "config", config_ini) == 0 &&
         provenance_write_attrs(f, &prov) == 0;
    named_value v[16];
    int nv = progress_values(v, t, p);
    for (int i = 0; ok && i < nv; i++) ok = write_double_attr(f, v[i].name, v[i].value) == 0;
    for (int g = 0; ok && g < 4; g++) {
        char an[32];
        snprintf(an, sizeof an, "crc32_%s", CKPT_GROUPS[g]);
        ok = write_u32_attr(f, an, crcs[g]) == 0 &&
             write_group(f, CKPT_GROUPS[g], l, bufs[g], owned[g], t->rank, t->size) == 0;
        const char *delay = getenv("VAMP_INJECT_CKPT_DELAY"); /* tests: a window to kill a rank mid-write */
        if (ok && delay && g == 1) sleep((unsigned)atoi(delay));
    }
    if (f >= 0) {
        if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) ok = 0;
        if (H5Fclose(f) < 0) ok = 0;
    }
    ok = !vamp_any(comm, !ok);
    char msg[1400] = "";
    if (t->rank == 0) {
        if (!ok) {
            unlink(tmp);
            snprintf(msg, sizeof msg, "cannot write checkpoint \"%s\" (disk full or directory not writable?); the "
                     "previous checkpoints are unchanged", path);
        } else if (rename(tmp, path) != 0 || write_pointer(dir, "latest", name) != 0 ||
                   (is_best && write_pointer(dir, "best", name) != 0)) {
            snprintf(msg, sizeof msg, "cannot put checkpoint \"%s\" in place: %s", path, strerror(errno));
        } else { /* keep the newest checkpoint.keep files and the best */
            char best[1100] = "";
            read_pointer(dir, "best", best, sizeof best);
            static char list[VAMP_CKPT_MAX][1100];
            int n = checkpoint_list(dir, list, VAMP_CKPT_MAX);
            for (int i = t->cfg.ckpt_keep; i < n; i++)
                if (strcmp(strrchr(list[i], '/') + 1, best) != 0) unlink(list[i]);
        }
    }
    CHECK_MPI(MPI_Bcast(msg, sizeof msg, MPI_CHAR, 0, comm));
    if (msg[0]) vamp_exit_error(comm, 1, "%s", msg);
}

static int read_double_attr(hid_t f, const char *name, double *out)
{
    if (H5Aexists(f, name) <= 0) return -1;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    int ok = a >= 0 && H5Aread(a, H5T_NATIVE_DOUBLE, out) >= 0;
    if (a >= 0) H5Aclose(a);
    return ok ? 0 : -1;
}

/* Reads a (fixed-length) string attribute into a new buffer; NULL if absent. */
static char *read_string_attr_alloc(hid_t f, const char *name)
{
    if (H5Aexists(f, name) <= 0) return NULL;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    hid_t t = H5Aget_type(a);
    char *s = NULL;
    if (H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) <= 0) {
        size_t n = H5Tget_size(t);
        s = xcalloc(n + 1);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, n);
        if (H5Aread(a, mt, s) < 0) {
            free(s);
            s = NULL;
        }
        H5Tclose(mt);
    }
    H5Tclose(t);
    H5Aclose(a);
    return s;
}

/* Model-shaping and trajectory keys: a checkpoint cannot continue under other values. */
static const char *const FIXED_KEYS[] = {"run.seed", "data.path", "data.binarize", "data.stripes", "data.train_limit",
                                         "model.type", "model.likelihood", "model.hidden", "model.z1", "model.z2",
                                         "prior.type", "prior.components", "train.batch_size", "train.optimizer"};

int checkpoint_read(const char *path, vamp_trainer *t, vamp_progress *p, char *err, size_t errlen)
{
    const vamp_layout *l = &t->model.layout;
    vamp_h5_quiet();
    if (H5Fis_hdf5(path) <= 0) {
        snprintf(err, errlen, "%s: not a readable HDF5 file (truncated or corrupt?)", path);
        return -1;
    }
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    CHECK_H5(fapl);
    CHECK_H5(H5Pset_fapl_mpio(fapl, t->comm, MPI_INFO_NULL));
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (f < 0) {
        snprintf(err, errlen, "%s: cannot be opened as HDF5 (truncated or corrupt?)", path);
        return -1;
    }
    int rc = -1;
    char fmt[64] = "";
    double version = 0;
    char *cfg_text = read_string_attr_alloc(f, "format");
    if (cfg_text) snprintf(fmt, sizeof fmt, "%s", cfg_text);
    free(cfg_text);
    cfg_text = NULL;
    float *bufs[4] = {NULL, NULL, NULL, NULL};
    if (strcmp(fmt, VAMP_CKPT_FORMAT) != 0 || read_double_attr(f, "version", &version) != 0 ||
        version != VAMP_CKPT_VERSION) {
        snprintf(err, errlen, "%s: not a vamp_mpi checkpoint (format \"%s\", version %g; expected \"%s\" %d)", path, fmt,
                 version, VAMP_CKPT_FORMAT, VAMP_CKPT_VERSION);
        goto done;
    }
    cfg_text = read_string_attr_alloc(f, "config");
    vamp_config saved;
    char cerr[512], diff[2048];
    if (!cfg_text || config_load_text(&saved, cfg_text, "checkpoint config", cerr, sizeof cerr) != 0) {
        snprintf(err, errlen, "%s: its stored configuration is unreadable", path);
        goto done;
    }
    config_diff(&saved, &t->cfg, diff, sizeof diff);
    char refused[2048] = "";
    for (size_t k = 0; k < sizeof FIXED_KEYS / sizeof FIXED_KEYS[0]; k++) {
        const char *hit = strstr(diff, FIXED_KEYS[k]);
        size_t len = strlen(FIXED_KEYS[k]);
        if (hit && (hit[len] == '\0' || hit[len] == ',') && (hit == diff || hit[-1] == ' '))
            snprintf(refused + strlen(refused), sizeof refused - strlen(refused), "%s%s", refused[0] ? ", " : "",
                     FIXED_KEYS[k]);
    }
    if (refused[0]) {
        snprintf(err, errlen, "%s was written with a different model or data order; these keys differ: %s "
                 "(only keys such as train.epochs, train.patience, eval.* or checkpoint.* may change on resume)",
                 path, refused);
        goto done;
    }
    for (int g = 0; g < 4; g++) {
        bufs[g] = xmalloc(l->total * sizeof(float));
        for (int i = 0; i < l->n; i++) {
            const vamp_tensor *T = &l->t[i];
            char dn[VAMP_NAME_LEN + 16];
            snprintf(dn, sizeof dn, "%s/%s", CKPT_GROUPS[g], T->name);
            if (H5Lexists(f, CKPT_GROUPS[g], H5P_DEFAULT) <= 0 || H5Lexists(f, dn, H5P_DEFAULT) <= 0) {
                snprintf(err, errlen, "%s: dataset /%s is missing", path, dn);
                goto done;
            }
            hid_t ds = H5Dopen2(f, dn, H5P_DEFAULT);
            hid_t sp = H5Dget_space(ds);
            hsize_t dims[2] = {0, 1};
            int nd = H5Sget_simple_extent_ndims(sp);
            if (nd >= 1 && nd <= 2) H5Sget_simple_extent_dims(sp, dims, NULL);
            int shape_ok = nd == T->ndim && dims[0] == T->shape[0] && (nd == 1 || dims[1] == T->shape[1]);
            int read_ok = shape_ok && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, bufs[g] + T->offset) >= 0;
            H5Sclose(sp);
            H5Dclose(ds);
            if (!shape_ok) {
                snprintf(err, errlen, "%s: dataset /%s has another shape than the model's %zux%zu", path, dn, T->shape[0],
                         T->shape[1]);
                goto done;
            }
            if (!read_ok) {
                snprintf(err, errlen, "%s: dataset /%s cannot be read (truncated or corrupt?)", path, dn);
                goto done;
            }
        }
        char an[32];
        snprintf(an, sizeof an, "crc32_%s", CKPT_GROUPS[g]);
        hid_t a = H5Aexists(f, an) > 0 ? H5Aopen(f, an, H5P_DEFAULT) : -1;
        uint32_t want = 0;
        int have = a >= 0 && H5Aread(a, H5T_NATIVE_UINT32, &want) >= 0;
        if (a >= 0) H5Aclose(a);
        if (!have || want != crc_of(bufs[g], l->total)) {
            snprintf(err, errlen, "%s: checksum mismatch in /%s: the file is corrupt", path, CKPT_GROUPS[g]);
            goto done;
        }
    }
    named_value v[16];
    vamp_progress np;
    memset(&np, 0, sizeof np);
    int nv = progress_values(v, t, &np);
    double vals[16];
    for (int i = 0; i < nv; i++)
        if (read_double_attr(f, v[i].name, &vals[i]) != 0) {
            snprintf(err, errlen, "%s: attribute %s is missing", path, v[i].name);
            goto done;
        }
    /* success: install everything */
    t->step = (long)vals[0];
    t->opt.step = (long)vals[1];
    np.epoch = (int)vals[2];
    np.it = (long)vals[3];
    np.sum_loss = vals[4];
    np.sum_re = vals[5];
    np.sum_kl = vals[6];
    np.nsteps = (long)vals[7];
    np.epoch_seconds = vals[8];
    np.best_val = vals[9];
    np.best_epoch = (int)vals[10];
    np.since_best = (int)vals[11];
    np.train_seconds = vals[12];
    *p = np;
    memcpy(t->params, bufs[0], l->total * sizeof(float));
    memcpy(t->best, bufs[3], l->total * sizeof(float));
    /* the Adam moments: only the tensors this rank owns */
    const size_t base = (size_t)t->red.displs[t->rank], own = (size_t)t->red.counts[t->rank];
    memcpy(t->adam_m, bufs[1] + base, own * sizeof(float));
    memcpy(t->adam_v, bufs[2] + base, own * sizeof(float));
    rc = 0;
done:
    for (int g = 0; g < 4; g++) free(bufs[g]);
    free(cfg_text);
    H5Fclose(f);
    return rc;
}
