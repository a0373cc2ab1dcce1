/* Parameter files (final.h5, eval.h5) and training checkpoints, written by rank 0 from an in-memory image under
 * a temporary name and renamed into place; checkpoints read by rank 0 and broadcast. See checkpoint.h for the
 * formats. Every MPI call here is made by every rank whatever happens to the file, so a failure on one rank
 * (a full disk) becomes one verdict that all ranks act on together. */
#include "vamp/checkpoint.h"
#include "vamp/check.h"
#include "vamp/h5file.h"
#include "vamp/provenance.h"

#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* ---- parameter files (rank 0) ------------------------------------------------------------------------------ */

/* Rank 0: builds the parameter file in memory. 0 or -1. */
static hid_t build_params_file(const vamp_layout *l, const float *params, const char *config_ini,
                               const vamp_provenance *prov, const vamp_attr *attrs, int nattrs,
                               const vamp_extra *extra, int nextra)
{
    hid_t f = h5file_create();
    if (f < 0) return -1;
    int ok = h5_attr_string(f, "format", VAMP_PARAMS_FORMAT) == 0 &&
             h5_attr_double(f, "version", VAMP_PARAMS_VERSION) == 0 && h5_attr_string(f, "config", config_ini) == 0 &&
             provenance_write_attrs(f, prov) == 0;
    for (int i = 0; ok && i < nattrs; i++) ok = h5_attr_double(f, attrs[i].key, attrs[i].value) == 0;
    for (int i = 0; ok && i < l->n; i++) {
        const vamp_tensor *t = &l->t[i];
        char name[VAMP_NAME_LEN + 16];
        snprintf(name, sizeof name, "params/%s", t->name);
        hsize_t dims[2] = {t->shape[0], t->shape[1]};
        ok = h5_dataset_f32(f, name, t->ndim, dims, params + t->offset) == 0;
    }
    for (int i = 0; ok && i < nextra; i++) {
        hsize_t dims[1] = {extra[i].n};
        ok = h5_dataset_f32(f, extra[i].name, 1, dims, extra[i].data) == 0;
    }
    if (!ok) {
        H5Fclose(f);
        return -1;
    }
    return f;
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
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()); /* two --eval at once do not collide */
        vamp_h5_quiet();
        hid_t f = build_params_file(l, params, config_ini, &prov, attrs, nattrs, extra, nextra);
        if (f < 0)
            snprintf(msg, sizeof msg, "cannot write \"%s\": HDF5 could not build the file in memory", path);
        else if (h5file_save(f, tmp, 0) != 0)
            snprintf(msg, sizeof msg, "cannot write \"%s\": %s; any previous file there is unchanged", path,
                     strerror(errno));
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

/* ---- training checkpoints ---------------------------------------------------------------------------------- */

static const char *const CKPT_GROUPS[] = {"params", "adam_m", "adam_v", "best"};

static uint32_t crc_of(const void *x, size_t bytes)
{
    uLong c = crc32(0L, Z_NULL, 0);
    const unsigned char *b = (const unsigned char *)x;
    while (bytes) { /* crc32 takes a uInt length */
        uInt k = bytes > (1u << 30) ? (1u << 30) : (uInt)bytes;
        c = crc32(c, b, k);
        b += k;
        bytes -= k;
    }
    return (uint32_t)c;
}

/* Collective. The CRC-32 of the concatenation of every rank's `bytes` in rank order, from each rank's CRC of
 * its own. */
static uint32_t crc_over_ranks(uint32_t mine_crc, size_t bytes, int size, MPI_Comm comm)
{
    unsigned long long mine[2] = {mine_crc, (unsigned long long)bytes};
    unsigned long long *all = xmalloc((size_t)size * sizeof mine);
    CHECK_MPI(MPI_Allgather(mine, 2, MPI_UNSIGNED_LONG_LONG, all, 2, MPI_UNSIGNED_LONG_LONG, comm));
    uLong c = crc32(0L, Z_NULL, 0);
    for (int q = 0; q < size; q++) c = crc32_combine(c, (uLong)all[2 * q], (z_off_t)all[2 * q + 1]);
    free(all);
    return (uint32_t)c;
}

void checkpoint_data_id(vamp_data_id *id, const vamp_data *d, MPI_Comm comm)
{
    int size;
    CHECK_MPI(MPI_Comm_size(comm, &size));
    memset(id, 0, sizeof *id);
    const vamp_split *sp[3] = {&d->train, &d->valid, &d->test};
    id->pixels = (long)d->D;
    for (int s = 0; s < 3; s++) { /* each rank holds whole rows, contiguous and in rank order */
        id->rows[s] = sp[s]->n;
        id->crc[s] = crc_over_ranks(sp[s]->crc, (size_t)(sp[s]->row_hi - sp[s]->row_lo) * d->D * sizeof(float), size,
                                    comm);
    }
}

/* MPI_Bcast of n floats from rank 0, in pieces below INT_MAX. */
static void bcast_floats(float *x, size_t n, MPI_Comm comm)
{
    const size_t piece = (size_t)1 << 30;
    for (size_t i = 0; i < n; i += piece)
        CHECK_MPI(MPI_Bcast(x + i, (int)(n - i < piece ? n - i : piece), MPI_FLOAT, 0, comm));
}

/* The progress record: everything besides the buffers that a resume needs, stored as one double attribute per
 * field (exact for the integers involved) and read back through the same table, range-checked. */
typedef struct {
    long step, adam_step;
    vamp_progress p;
    vamp_data_id data;
} ckpt_record;

typedef enum { F_INT, F_LONG, F_U32, F_DOUBLE } field_type;

typedef struct {
    const char *name; /* attribute */
    size_t offset;    /* in ckpt_record */
    field_type type;
    double lo, hi;    /* allowed values, inclusive (the integer types must also be whole numbers) */
} ckpt_field;

#define BIG 1e15 /* steps, batches, rows: far beyond any run, exact in a double */
static const ckpt_field FIELDS[] = {
    {"step", offsetof(ckpt_record, step), F_LONG, 0, BIG},
    {"adam_step", offsetof(ckpt_record, adam_step), F_LONG, 0, BIG},
    {"epoch", offsetof(ckpt_record, p.epoch), F_INT, 1, INT_MAX},
    {"it", offsetof(ckpt_record, p.it), F_LONG, 0, BIG},
    {"sum_loss", offsetof(ckpt_record, p.sum_loss), F_DOUBLE, -DBL_MAX, DBL_MAX},
    {"sum_re", offsetof(ckpt_record, p.sum_re), F_DOUBLE, -DBL_MAX, DBL_MAX},
    {"sum_kl", offsetof(ckpt_record, p.sum_kl), F_DOUBLE, -DBL_MAX, DBL_MAX},
    {"nsteps", offsetof(ckpt_record, p.nsteps), F_LONG, 0, BIG},
    {"skipped", offsetof(ckpt_record, p.skipped), F_LONG, 0, BIG},
    {"epoch_seconds", offsetof(ckpt_record, p.epoch_seconds), F_DOUBLE, 0, DBL_MAX},
    {"best_val", offsetof(ckpt_record, p.best_val), F_DOUBLE, -DBL_MAX, INFINITY}, /* inf: no epoch yet */
    {"best_epoch", offsetof(ckpt_record, p.best_epoch), F_INT, 0, INT_MAX},
    {"since_best", offsetof(ckpt_record, p.since_best), F_INT, 0, INT_MAX},
    {"train_seconds", offsetof(ckpt_record, p.train_seconds), F_DOUBLE, 0, DBL_MAX},
    {"data_train_rows", offsetof(ckpt_record, data.rows[0]), F_LONG, 1, BIG},
    {"data_valid_rows", offsetof(ckpt_record, data.rows[1]), F_LONG, 1, BIG},
    {"data_test_rows", offsetof(ckpt_record, data.rows[2]), F_LONG, 1, BIG},
    {"data_pixels", offsetof(ckpt_record, data.pixels), F_LONG, 1, BIG},
    {"data_train_crc32", offsetof(ckpt_record, data.crc[0]), F_U32, 0, UINT32_MAX},
    {"data_valid_crc32", offsetof(ckpt_record, data.crc[1]), F_U32, 0, UINT32_MAX},
    {"data_test_crc32", offsetof(ckpt_record, data.crc[2]), F_U32, 0, UINT32_MAX},
};
#define NFIELDS (sizeof FIELDS / sizeof FIELDS[0])

static double field_get(const ckpt_record *r, const ckpt_field *f)
{
    const char *at = (const char *)r + f->offset;
    switch (f->type) {
    case F_INT: return *(const int *)at;
    case F_LONG: return (double)*(const long *)at;
    case F_U32: return *(const uint32_t *)at;
    default: return *(const double *)at;
    }
}

static void field_set(ckpt_record *r, const ckpt_field *f, double v)
{
    char *at = (char *)r + f->offset;
    switch (f->type) {
    case F_INT: *(int *)at = (int)v; break;
    case F_LONG: *(long *)at = (long)v; break;
    case F_U32: *(uint32_t *)at = (uint32_t)v; break;
    default: *(double *)at = v;
    }
}

/* The CRC-32 over every root attribute but crc32_attrs, in name order: name, type class, and the stored bytes
 * (a variable-length string: its characters). Writer and reader run this same code. 0 or -1. */
typedef struct {
    uLong crc;
    int ok;
} attr_walk;

static herr_t attr_crc_one(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
    (void)info;
    attr_walk *w = data;
    if (!strcmp(name, "crc32_attrs")) return 0;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t type = a >= 0 ? H5Aget_type(a) : -1;
    hid_t space = a >= 0 ? H5Aget_space(a) : -1;
    hssize_t np = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    size_t tsize = type >= 0 ? H5Tget_size(type) : 0;
    int ok = np >= 0 && tsize > 0 && tsize <= (1u << 20) && (size_t)np <= ((size_t)1 << 20) / tsize;
    unsigned char cls = ok ? (unsigned char)H5Tget_class(type) : 0;
    w->crc = crc32(w->crc, (const unsigned char *)name, (uInt)strlen(name) + 1);
    w->crc = crc32(w->crc, &cls, 1);
    if (ok && H5Tis_variable_str(type) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        char *str = NULL;
        ok = np == 1 && mt >= 0 && H5Tset_size(mt, H5T_VARIABLE) >= 0 && H5Tset_cset(mt, H5Tget_cset(type)) >= 0 &&
             H5Aread(a, mt, &str) >= 0 && str;
        if (ok) w->crc = crc32(w->crc, (const unsigned char *)str, (uInt)strlen(str) + 1);
        if (str) H5free_memory(str);
        if (mt >= 0) H5Tclose(mt);
    } else if (ok) {
        unsigned char *buf = malloc(tsize * (size_t)np + 1);
        ok = buf && H5Aread(a, type, buf) >= 0;
        if (ok) w->crc = crc32(w->crc, buf, (uInt)(tsize * (size_t)np));
        free(buf);
    }
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (a >= 0) H5Aclose(a);
    if (!ok) w->ok = 0;
    return ok ? 0 : -1;
}

static int attrs_crc(hid_t f, uint32_t *out)
{
    attr_walk w = {crc32(0L, Z_NULL, 0), 1};
    hsize_t idx = 0;
    if (H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_crc_one, &w) < 0 || !w.ok) return -1;
    *out = (uint32_t)w.crc;
    return 0;
}

/* Rank 0: the checkpoint in memory (bufs: params, adam_m, adam_v, best, each the whole layout). Or -1. */
static hid_t build_checkpoint(const vamp_layout *l, float *const bufs[4], const ckpt_record *rec,
                              const char *config_ini, const vamp_provenance *prov)
{
    hid_t f = h5file_create();
    if (f < 0) return -1;
    int ok = h5_attr_string(f, "format", VAMP_CKPT_FORMAT) == 0 &&
             h5_attr_double(f, "version", VAMP_CKPT_VERSION) == 0 && h5_attr_string(f, "config", config_ini) == 0 &&
             provenance_write_attrs(f, prov) == 0;
    for (size_t i = 0; ok && i < NFIELDS; i++) ok = h5_attr_double(f, FIELDS[i].name, field_get(rec, &FIELDS[i])) == 0;
    for (int g = 0; ok && g < 4; g++) {
        char an[32];
        snprintf(an, sizeof an, "crc32_%s", CKPT_GROUPS[g]);
        ok = h5_attr_u32(f, an, crc_of(bufs[g], l->total * sizeof(float))) == 0;
        for (int i = 0; ok && i < l->n; i++) {
            const vamp_tensor *t = &l->t[i];
            char name[VAMP_NAME_LEN + 16];
            snprintf(name, sizeof name, "%s/%s", CKPT_GROUPS[g], t->name);
            hsize_t dims[2] = {t->shape[0], t->shape[1]};
            ok = h5_dataset_f32(f, name, t->ndim, dims, bufs[g] + t->offset) == 0;
        }
    }
    uint32_t crc = 0;
    ok = ok && attrs_crc(f, &crc) == 0 && h5_attr_u32(f, "crc32_attrs", crc) == 0; /* last: covers all others */
    if (!ok) {
        H5Fclose(f);
        return -1;
    }
    return f;
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

void checkpoint_write(const vamp_trainer *t, const vamp_progress *p, const vamp_data_id *id, const char *config_ini,
                      int is_best)
{
    MPI_Comm comm = t->comm;
    const vamp_layout *l = &t->model.layout;
    const size_t N = l->total;
    /* rank 0 writes the whole file: the Adam moments come from the ranks that own them */
    float *m = NULL, *v = NULL;
    if (t->rank == 0) {
        m = xmalloc(N * sizeof(float));
        v = xmalloc(N * sizeof(float));
    }
    CHECK_MPI(MPI_Gatherv(t->adam_m, t->red.counts[t->rank], MPI_FLOAT, m, t->red.counts, t->red.displs, MPI_FLOAT, 0,
                          comm));
    CHECK_MPI(MPI_Gatherv(t->adam_v, t->red.counts[t->rank], MPI_FLOAT, v, t->red.counts, t->red.displs, MPI_FLOAT, 0,
                          comm));
    vamp_provenance prov;
    provenance_collect(&prov, comm);
    const char *dir = t->cfg.run_dir;
    char name[64], path[1200], tmp[1300];
    snprintf(name, sizeof name, "ckpt-%08ld.h5", t->step);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);

    /* every rank's own verdict. Only rank 0 touches the file; the test hook fails another rank's part, to show
     * that a failure anywhere is agreed on by all before anyone leaves */
    char why[512] = "";
    const char *inject = getenv("VAMP_INJECT_CKPT_FAILURE_RANK");
    if (inject && atoi(inject) == t->rank)
        snprintf(why, sizeof why, "injected failure (VAMP_INJECT_CKPT_FAILURE_RANK=%d)", t->rank);
    int wrote = 0;
    if (t->rank == 0 && !why[0]) {
        vamp_h5_quiet();
        ckpt_record rec;
        memset(&rec, 0, sizeof rec);
        rec.step = t->step;
        rec.adam_step = t->opt.step;
        rec.p = *p;
        rec.data = *id;
        float *bufs[4] = {t->params, m, v, t->best};
        const char *delay = getenv("VAMP_INJECT_CKPT_DELAY"); /* tests: a window to kill a rank mid-write */
        hid_t f = build_checkpoint(l, bufs, &rec, config_ini, &prov);
        free(m); /* the image holds them now: rank 0's peak is the image and its copy on the way to disk */
        free(v);
        m = v = NULL;
        if (f < 0)
            snprintf(why, sizeof why, "HDF5 could not build the file in memory");
        else if (getenv("VAMP_INJECT_CKPT_FAILURE")) { /* tests: a write that fails like a full disk */
            H5Fclose(f);
            snprintf(why, sizeof why, "%s (injected: VAMP_INJECT_CKPT_FAILURE)", strerror(ENOSPC));
        } else if (h5file_save(f, tmp, delay ? (unsigned)atoi(delay) : 0) != 0)
            snprintf(why, sizeof why, "%s", strerror(errno));
        else
            wrote = 1;
    }
    free(m);
    free(v);
    /* one verdict: the lowest rank that failed (size: none), then that rank's reason */
    int first_bad = why[0] ? t->rank : t->size;
    CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &first_bad, 1, MPI_INT, MPI_MIN, comm));
    if (first_bad < t->size) CHECK_MPI(MPI_Bcast(why, sizeof why, MPI_CHAR, first_bad, comm));
    char msg[2000] = "";
    if (t->rank == 0) {
        if (first_bad < t->size) {
            if (wrote) unlink(tmp);
            snprintf(msg, sizeof msg, "cannot write checkpoint \"%s\" (rank %d: %s); the previous checkpoints are "
                     "unchanged", path, first_bad, why);
        } else if (rename(tmp, path) != 0 || write_pointer(dir, "latest", name) != 0 ||
                   (is_best && write_pointer(dir, "best", name) != 0)) {
            snprintf(msg, sizeof msg, "cannot put checkpoint \"%s\" in place: %s", path, strerror(errno));
            unlink(tmp);
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

static int read_u32_attr(hid_t f, const char *name, uint32_t *out)
{
    if (H5Aexists(f, name) <= 0) return -1;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    int ok = a >= 0 && H5Aread(a, H5T_NATIVE_UINT32, out) >= 0;
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
    if (H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) <= 0 && H5Tget_size(t) <= ((size_t)1 << 24)) {
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

static const char *const SPLIT_NAMES[3] = {"training", "validation", "test"};

/* Rank 0: opens and checks path, fills rec and bufs (4 x layout). Returns 0 or a VAMP_CKPT_* verdict with err. */
static int read_checkpoint_file(const char *path, const vamp_trainer *t, const vamp_data_id *id, ckpt_record *rec,
                                float *const bufs[4], char *err, size_t errlen)
{
    const vamp_layout *l = &t->model.layout;
    vamp_h5_quiet();
    if (H5Fis_hdf5(path) <= 0) {
        snprintf(err, errlen, "%s: not a readable HDF5 file (truncated or corrupt?)", path);
        return VAMP_CKPT_DAMAGED;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        snprintf(err, errlen, "%s: cannot be opened as HDF5 (truncated or corrupt?)", path);
        return VAMP_CKPT_DAMAGED;
    }
    int rc = VAMP_CKPT_DAMAGED;
    char *text = read_string_attr_alloc(f, "format");
    char fmt[64];
    snprintf(fmt, sizeof fmt, "%s", text ? text : "(none)");
    free(text);
    text = NULL;
    double version = 0;
    if (strcmp(fmt, VAMP_CKPT_FORMAT) != 0) {
        snprintf(err, errlen, "%s: not a vamp_mpi checkpoint (attribute format is \"%s\", expected \"%s\")", path, fmt,
                 VAMP_CKPT_FORMAT);
        goto done;
    }
    if (read_double_attr(f, "version", &version) != 0 || (version != VAMP_CKPT_VERSION && version != 1)) {
        snprintf(err, errlen, "%s: attribute version is %g, expected %d (corrupt file?)", path, version,
                 VAMP_CKPT_VERSION);
        goto done;
    }
    if (version == 1) {
        snprintf(err, errlen, "%s: checkpoint format version 1, written by an older vamp_mpi; this one reads version "
                 "%d only (checksums over every attribute, the identity of the data). Resume it with the vamp_mpi "
                 "that wrote it, or start afresh (--resume none, or another run.dir)", path, VAMP_CKPT_VERSION);
        rc = VAMP_CKPT_REFUSED;
        goto done;
    }
    /* the progress record, field by field: present, in range */
    memset(rec, 0, sizeof *rec);
    for (size_t i = 0; i < NFIELDS; i++) {
        const ckpt_field *fd = &FIELDS[i];
        double x;
        if (read_double_attr(f, fd->name, &x) != 0) {
            snprintf(err, errlen, "%s: attribute %s is missing or unreadable", path, fd->name);
            goto done;
        }
        if (!(x >= fd->lo && x <= fd->hi) || (fd->type != F_DOUBLE && x != floor(x))) {
            snprintf(err, errlen, "%s: attribute %s = %.17g is outside its range (%s from %.15g to %.15g): corrupt file",
                     path, fd->name, x, fd->type == F_DOUBLE ? "a number" : "a whole number", fd->lo, fd->hi);
            goto done;
        }
        field_set(rec, fd, x);
    }
    /* every attribute (the record, config, provenance, the buffers' CRCs) against the checksum over them */
    uint32_t want = 0, have = 0;
    if (read_u32_attr(f, "crc32_attrs", &want) != 0) {
        snprintf(err, errlen, "%s: attribute crc32_attrs is missing or unreadable", path);
        goto done;
    }
    if (attrs_crc(f, &have) != 0 || have != want) {
        snprintf(err, errlen, "%s: checksum mismatch in the attributes (crc32_attrs): the progress record, "
                 "configuration or provenance is corrupt", path);
        goto done;
    }
    /* fields that must agree with each other and with this run's epoch length */
    const vamp_progress *p = &rec->p;
    const long spe = t->steps_per_epoch;
    const char *bad = NULL;
    if (rec->adam_step != rec->step) bad = "adam_step must equal step";
    else if (p->it > spe) bad = "it exceeds the steps per epoch";
    else if (p->nsteps > p->it) bad = "nsteps exceeds it";
    else if (rec->step + p->skipped != (long)(p->epoch - 1) * spe + p->it)
        bad = "step + skipped must equal (epoch - 1) x steps per epoch + it";
    else if (p->best_epoch > p->epoch - 1 || p->since_best > p->epoch - 1) bad = "best_epoch or since_best exceeds "
                                                                                 "the epochs done";
    else if ((p->best_epoch == 0) != (p->best_val == INFINITY)) bad = "best_epoch and best_val disagree";
    if (bad) {
        snprintf(err, errlen, "%s: inconsistent progress record (step %ld, epoch %d, it %ld, %ld steps per epoch): "
                 "%s", path, rec->step, p->epoch, p->it, spe, bad);
        goto done;
    }
    text = read_string_attr_alloc(f, "config");
    vamp_config saved;
    char cerr[512], diff[2048];
    if (!text || config_load_text(&saved, text, "checkpoint config", cerr, sizeof cerr) != 0) {
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
        rc = VAMP_CKPT_REFUSED;
        goto done;
    }
    /* the data: the training split must be the same; valid/test too where their row counts are (their limits
     * may change on resume) */
    const vamp_data_id *was = &rec->data;
    for (int s = 0; s < 3; s++) {
        int differs = was->pixels != id->pixels || (s == 0 && was->rows[0] != id->rows[0]) ||
                      (was->rows[s] == id->rows[s] && was->crc[s] != id->crc[s]);
        if (!differs) continue;
        snprintf(err, errlen, "%s was written for other data: data.path = %s now has a %s split of %ld rows x %ld "
                 "pixels with CRC-32 %08x, the checkpoint's had %ld x %ld with CRC-32 %08x (a different file at the "
                 "same path? restore the original, or start afresh with --resume none or another run.dir)", path,
                 t->cfg.data_path, SPLIT_NAMES[s], id->rows[s], id->pixels, (unsigned)id->crc[s], was->rows[s],
                 was->pixels, (unsigned)was->crc[s]);
        rc = VAMP_CKPT_REFUSED;
        goto done;
    }
    for (int g = 0; g < 4; g++) {
        for (int i = 0; i < l->n; i++) {
            const vamp_tensor *T = &l->t[i];
            char dn[VAMP_NAME_LEN + 16];
            snprintf(dn, sizeof dn, "%s/%s", CKPT_GROUPS[g], T->name);
            if (H5Lexists(f, CKPT_GROUPS[g], H5P_DEFAULT) <= 0 || H5Lexists(f, dn, H5P_DEFAULT) <= 0) {
                snprintf(err, errlen, "%s: dataset /%s is missing", path, dn);
                goto done;
            }
            hid_t ds = H5Dopen2(f, dn, H5P_DEFAULT);
            hid_t sp = ds >= 0 ? H5Dget_space(ds) : -1;
            hsize_t dims[2] = {0, 1};
            int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
            if (nd >= 1 && nd <= 2) H5Sget_simple_extent_dims(sp, dims, NULL);
            int shape_ok = nd == T->ndim && dims[0] == T->shape[0] && (nd == 1 || dims[1] == T->shape[1]);
            int read_ok = shape_ok &&
                          H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, bufs[g] + T->offset) >= 0;
            if (sp >= 0) H5Sclose(sp);
            if (ds >= 0) H5Dclose(ds);
            if (!shape_ok) {
                snprintf(err, errlen, "%s: dataset /%s has another shape than the model's %zux%zu", path, dn,
                         T->shape[0], T->shape[1]);
                goto done;
            }
            if (!read_ok) {
                snprintf(err, errlen, "%s: dataset /%s cannot be read (truncated or corrupt?)", path, dn);
                goto done;
            }
        }
        char an[32];
        snprintf(an, sizeof an, "crc32_%s", CKPT_GROUPS[g]);
        uint32_t crc = 0;
        if (read_u32_attr(f, an, &crc) != 0 || crc != crc_of(bufs[g], l->total * sizeof(float))) {
            snprintf(err, errlen, "%s: checksum mismatch in /%s: the file is corrupt", path, CKPT_GROUPS[g]);
            goto done;
        }
    }
    rc = 0;
done:
    free(text);
    H5Fclose(f);
    return rc;
}

int checkpoint_read(const char *path, vamp_trainer *t, vamp_progress *p, const vamp_data_id *id, char *err,
                    size_t errlen)
{
    const size_t N = t->model.layout.total;
    float *bufs[4] = {NULL, NULL, NULL, NULL};
    ckpt_record rec;
    memset(&rec, 0, sizeof rec);
    char msg[2048] = "";
    int rc = 0;
    if (t->rank == 0) {
        for (int g = 0; g < 4; g++) bufs[g] = xmalloc(N * sizeof(float));
        rc = read_checkpoint_file(path, t, id, &rec, bufs, msg, sizeof msg);
    }
    /* rank 0's verdict is everyone's */
    CHECK_MPI(MPI_Bcast(&rc, 1, MPI_INT, 0, t->comm));
    if (rc != 0) {
        CHECK_MPI(MPI_Bcast(msg, sizeof msg, MPI_CHAR, 0, t->comm));
        snprintf(err, errlen, "%s", msg);
        for (int g = 0; g < 4; g++) free(bufs[g]);
        return rc;
    }
    CHECK_MPI(MPI_Bcast(&rec, (int)sizeof rec, MPI_BYTE, 0, t->comm));
    t->step = rec.step;
    t->opt.step = rec.adam_step;
    *p = rec.p;
    if (t->rank == 0) {
        memcpy(t->params, bufs[0], N * sizeof(float));
        memcpy(t->best, bufs[3], N * sizeof(float));
    }
    bcast_floats(t->params, N, t->comm);
    bcast_floats(t->best, N, t->comm);
    /* the Adam moments: each rank receives the tensors it owns */
    const vamp_reducer *r = &t->red;
    CHECK_MPI(MPI_Scatterv(bufs[1], r->counts, r->displs, MPI_FLOAT, t->adam_m, r->counts[t->rank], MPI_FLOAT, 0,
                           t->comm));
    CHECK_MPI(MPI_Scatterv(bufs[2], r->counts, r->displs, MPI_FLOAT, t->adam_v, r->counts[t->rank], MPI_FLOAT, 0,
                           t->comm));
    for (int g = 0; g < 4; g++) free(bufs[g]);
    return 0;
}
