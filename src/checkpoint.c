/* Parameter files (final.h5, eval.h5) and training checkpoints, written by rank 0 from an in-memory image under
 * a temporary name and renamed into place; checkpoints read by rank 0 and broadcast. See checkpoint.h for the
 * formats. Every MPI call here is made by every rank whatever happens to the file, so a failure on one rank
 * (a full disk) becomes one verdict that all ranks act on together. */
#include "vamp/checkpoint.h"
#include "vamp/check.h"
#include "vamp/h5io.h"
#include "vamp/provenance.h"
#include "vamp/testhooks.h"

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

/* The HDF5 dims of a tensor: its torch shape (ndim of them). */
static void tensor_dims(const vamp_tensor *t, hsize_t dims[VAMP_MAX_DIMS])
{
    for (int i = 0; i < VAMP_MAX_DIMS; i++) dims[i] = t->shape[i];
}

/* "AxB" (at least two numbers, a rank-1 shape as "Nx1", as the messages have always said), "AxBxCxD" for more. */
static const char *shape_text(char *buf, size_t len, const hsize_t *dims, int nd)
{
    size_t used = (size_t)snprintf(buf, len, "%llu", (unsigned long long)dims[0]);
    for (int i = 1; i < (nd > 2 ? nd : 2) && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "x%llu", (unsigned long long)dims[i]);
    return buf;
}

/* Rank 0: builds the parameter file in memory. 0 or -1. */
static hid_t build_params_file(const vamp_layout *l, const float *params, const char *config_ini,
                               const vamp_provenance *prov, const vamp_attr *attrs, int nattrs,
                               const vamp_extra *extra, int nextra)
{
    hid_t f = h5file_create();
    if (f < 0) return -1;
    int ok = h5_attr_utf8(f, "format", VAMP_PARAMS_FORMAT) == 0 && h5_attr_i32(f, "version", VAMP_PARAMS_VERSION) == 0 &&
             h5_attr_utf8(f, "config", config_ini) == 0 && provenance_write_attrs(f, prov) == 0;
    for (int i = 0; ok && i < nattrs; i++)
        ok = (attrs[i].integer ? h5_attr_i64(f, attrs[i].key, (int64_t)attrs[i].value)
                               : h5_attr_double(f, attrs[i].key, attrs[i].value)) == 0;
    for (int i = 0; ok && i < l->n; i++) {
        const vamp_tensor *t = &l->t[i];
        char name[VAMP_NAME_LEN + 16];
        snprintf(name, sizeof name, "params/%s", t->name);
        hsize_t dims[VAMP_MAX_DIMS];
        tensor_dims(t, dims);
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
    char msg[VAMP_MSG_LEN] = "";
    if (rank == 0) {
        char tmp[VAMP_FILE_PATH_LEN];
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()); /* two --eval at once do not collide */
        hid_t f = build_params_file(l, params, config_ini, &prov, attrs, nattrs, extra, nextra);
        if (f < 0)
            snprintf(msg, sizeof msg, "cannot write \"%s\": HDF5 could not build the file in memory", path);
        else if (h5file_put(f, path, tmp) != 0)
            snprintf(msg, sizeof msg, "cannot write \"%s\": %s; any previous file there is unchanged", path,
                     strerror(errno));
    }
    io_agree_or_exit(comm, msg, 1);
}

void params_read(const char *path, const vamp_layout *l, float *params, MPI_Comm comm)
{
    if (access(path, R_OK) != 0)
        vamp_input_error(comm, "cannot open parameter file \"%s\": %s", path, strerror(errno));
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) vamp_input_error(comm, "\"%s\" is not an HDF5 file", path);
    for (int i = 0; i < l->n; i++) {
        const vamp_tensor *t = &l->t[i];
        char name[VAMP_NAME_LEN + 16];
        snprintf(name, sizeof name, "params/%s", t->name);
        hsize_t want[VAMP_MAX_DIMS], dims[H5IO_MAX_DIMS];
        tensor_dims(t, want);
        int nd;
        int rc = h5_dataset_read_f32(f, name, t->ndim, want, params + t->offset, &nd, dims);
        if (rc == H5IO_MISSING)
            vamp_input_error(comm, "%s: dataset /%s is missing (was the file written for another model/prior?)",
                             path, name);
        if (rc == H5IO_SHAPE && (nd < 1 || nd > H5IO_MAX_DIMS || (nd != t->ndim && (nd > 2 || t->ndim > 2))))
            vamp_input_error(comm, "%s: dataset /%s has rank %d, expected %d", path, name, nd, t->ndim);
        char got[96], need[96];
        if (rc == H5IO_SHAPE)
            vamp_input_error(comm, "%s: dataset /%s has shape %s, the model needs %s", path, name,
                             shape_text(got, sizeof got, dims, nd), shape_text(need, sizeof need, want, t->ndim));
        if (rc != 0) vamp_input_error(comm, "%s: dataset /%s cannot be read (truncated or corrupt?)", path, name);
    }
    CHECK_H5(H5Fclose(f));
}

/* ---- training checkpoints ---------------------------------------------------------------------------------- */

/* The four buffers a checkpoint holds, each the whole layout, in file order. */
typedef enum { GROUP_PARAMS, GROUP_ADAM_M, GROUP_ADAM_V, GROUP_BEST, NGROUPS } ckpt_group;
static const char *const GROUP_NAMES[NGROUPS] = {"params", "adam_m", "adam_v", "best"};

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
static hid_t build_checkpoint(const vamp_layout *l, float *const bufs[NGROUPS], const ckpt_record *rec,
                              const char *config_ini, const vamp_provenance *prov)
{
    hid_t f = h5file_create();
    if (f < 0) return -1;
    int ok = h5_attr_utf8(f, "format", VAMP_CKPT_FORMAT) == 0 && h5_attr_i32(f, "version", VAMP_CKPT_VERSION) == 0 &&
             h5_attr_utf8(f, "config", config_ini) == 0 &&
             provenance_write_attrs(f, prov) == 0;
    for (size_t i = 0; ok && i < NFIELDS; i++) ok = h5_attr_double(f, FIELDS[i].name, field_get(rec, &FIELDS[i])) == 0;
    for (int g = 0; ok && g < NGROUPS; g++) {
        char an[32];
        snprintf(an, sizeof an, "crc32_%s", GROUP_NAMES[g]);
        ok = h5_attr_u32(f, an, crc_of(bufs[g], l->total * sizeof(float))) == 0;
        for (int i = 0; ok && i < l->n; i++) {
            const vamp_tensor *t = &l->t[i];
            char name[VAMP_NAME_LEN + 16];
            snprintf(name, sizeof name, "%s/%s", GROUP_NAMES[g], t->name);
            hsize_t dims[VAMP_MAX_DIMS];
            tensor_dims(t, dims);
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
    char path[VAMP_FILE_PATH_LEN], line[VAMP_FILE_PATH_LEN];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int n = snprintf(line, sizeof line, "%s\n", text);
    return io_put(path, NULL, line, (size_t)n);
}

static int read_pointer(const char *dir, const char *name, char *out, size_t len)
{
    char path[VAMP_FILE_PATH_LEN];
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

/* Moves paths[i] to paths[to] (to <= i), shifting those between down by one. */
static void move_path(char (*paths)[VAMP_FILE_PATH_LEN], int i, int to)
{
    char tp[VAMP_FILE_PATH_LEN];
    memcpy(tp, paths[i], sizeof tp);
    memmove(paths[to + 1], paths[to], (size_t)(i - to) * sizeof tp);
    memcpy(paths[to], tp, sizeof tp);
}

int checkpoint_list(const char *dir, char (*paths)[VAMP_FILE_PATH_LEN], int max)
{
    long steps[VAMP_CKPT_MAX];
    int n = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max && n < VAMP_CKPT_MAX) {
        long s = ckpt_step_of(e->d_name);
        if (s < 0) continue;
        int at = n; /* newest (highest step) first */
        while (at > 0 && steps[at - 1] < s) at--;
        memmove(steps + at + 1, steps + at, (size_t)(n - at) * sizeof steps[0]);
        steps[at] = s;
        snprintf(paths[n], VAMP_FILE_PATH_LEN, "%s/%s", dir, e->d_name);
        move_path(paths, n, at);
        n++;
    }
    closedir(d);
    char latest[VAMP_FILE_PATH_LEN];
    if (read_pointer(dir, "latest", latest, sizeof latest) == 0) /* the pointer wins if it names a listed file */
        for (int i = 1; i < n; i++)
            if (strcmp(strrchr(paths[i], '/') + 1, latest) == 0) {
                move_path(paths, i, 0);
                break;
            }
    return n;
}

/* Rank 0, after every rank agreed the file is written: renames it into place, updates the pointers and keeps the
 * newest `keep` checkpoints plus the best. Returns "" or a message in msg. */
static void put_in_place(const char *dir, const char *name, const char *tmp, const char *path, int is_best, int keep,
                         char *msg, size_t len)
{
    if (rename(tmp, path) != 0 || write_pointer(dir, "latest", name) != 0 ||
        (is_best && write_pointer(dir, "best", name) != 0)) {
        snprintf(msg, len, "cannot put checkpoint \"%s\" in place: %s", path, strerror(errno));
        unlink(tmp);
        return;
    }
    char best[VAMP_FILE_PATH_LEN] = "";
    read_pointer(dir, "best", best, sizeof best);
    char(*list)[VAMP_FILE_PATH_LEN] = xmalloc(VAMP_CKPT_MAX * sizeof *list);
    int n = checkpoint_list(dir, list, VAMP_CKPT_MAX);
    for (int i = keep; i < n; i++)
        if (strcmp(strrchr(list[i], '/') + 1, best) != 0) unlink(list[i]);
    free(list);
}

/* Rank 0: builds the checkpoint in memory and saves it to tmp; frees m and v (the gathered Adam moments) as soon as
 * the image holds them. Returns "" or the reason for the failure in why. */
static void save_checkpoint(const vamp_trainer *t, const vamp_progress *p, const vamp_data_id *id,
                            const char *config_ini, const vamp_provenance *prov, float *m, float *v, const char *tmp,
                            char *why, size_t len)
{
    ckpt_record rec;
    memset(&rec, 0, sizeof rec);
    rec.step = t->step;
    rec.adam_step = t->opt.step;
    rec.p = *p;
    rec.data = *id;
    float *bufs[NGROUPS] = {[GROUP_PARAMS] = t->params, [GROUP_ADAM_M] = m, [GROUP_ADAM_V] = v,
                            [GROUP_BEST] = t->best};
    hid_t f = build_checkpoint(&t->model.layout, bufs, &rec, config_ini, prov);
    free(m); /* the image holds them now: rank 0's peak is the image and its copy on the way to disk */
    free(v);
    if (f < 0)
        snprintf(why, len, "HDF5 could not build the file in memory");
    else if (testhook_ckpt_write_fails()) { /* a write that fails like a full disk */
        H5Fclose(f);
        snprintf(why, len, "%s (injected: VAMP_INJECT_CKPT_FAILURE)", strerror(ENOSPC));
    } else if (h5file_save(f, tmp, testhook_ckpt_delay_seconds()) != 0)
        snprintf(why, len, "%s", strerror(errno));
}

void checkpoint_write(const vamp_trainer *t, const vamp_progress *p, const vamp_data_id *id, const char *config_ini,
                      int is_best)
{
    MPI_Comm comm = t->comm;
    const size_t N = t->model.layout.total;
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
    char name[64], path[VAMP_FILE_PATH_LEN], tmp[VAMP_FILE_PATH_LEN + sizeof ".tmp"];
    snprintf(name, sizeof name, "ckpt-%08ld.h5", t->step);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);

    /* every rank's own verdict. Only rank 0 touches the file; the test hook fails another rank's part, to show
     * that a failure anywhere is agreed on by all before anyone leaves */
    char why[VAMP_MSG_LEN] = "";
    if (testhook_ckpt_failure_rank() == t->rank)
        snprintf(why, sizeof why, "injected failure (VAMP_INJECT_CKPT_FAILURE_RANK=%d)", t->rank);
    int wrote = 0;
    if (t->rank == 0 && !why[0]) {
        save_checkpoint(t, p, id, config_ini, &prov, m, v, tmp, why, sizeof why);
        m = v = NULL;
        wrote = !why[0];
    }
    free(m);
    free(v);
    int first_bad = io_agree_any(comm, why);
    char msg[VAMP_MSG_LEN] = "";
    if (t->rank == 0 && first_bad < t->size) {
        if (wrote) unlink(tmp);
        /* a long path told twice (here and in why) can exceed the message: then it ends in "..." */
        if (snprintf(msg, sizeof msg, "cannot write checkpoint \"%s\" (rank %d: %s); the previous checkpoints are "
                     "unchanged", path, first_bad, why) >= (int)sizeof msg)
            memcpy(msg + sizeof msg - 4, "...", 4);
    } else if (t->rank == 0) {
        put_in_place(dir, name, tmp, path, is_best, t->cfg.ckpt_keep, msg, sizeof msg);
    }
    io_agree_or_exit(comm, msg, 1);
}
/* Model-shaping and trajectory keys: a checkpoint cannot continue under other values. */
static const char *const FIXED_KEYS[] = {"run.seed", "data.path", "data.binarize", "data.stripes", "data.train_limit",
                                         "model.type", "model.likelihood", "model.hidden", "model.z1", "model.z2",
                                         "prior.type", "prior.components", "train.batch_size", "train.optimizer"};

static const char *const SPLIT_NAMES[3] = {"training", "validation", "test"};

/* Each step of reading a checkpoint (rank 0) returns 0 or a VAMP_CKPT_* verdict with a message naming path. */

/* The format and version attributes. */
static int read_header(hid_t f, const char *path, char *err, size_t errlen)
{
    char *text = h5_attr_read_string(f, "format");
    char fmt[64];
    snprintf(fmt, sizeof fmt, "%s", text ? text : "(none)");
    free(text);
    double version = 0;
    if (strcmp(fmt, VAMP_CKPT_FORMAT) != 0) {
        snprintf(err, errlen, "%s: not a vamp_mpi checkpoint (attribute format is \"%s\", expected \"%s\")", path, fmt,
                 VAMP_CKPT_FORMAT);
        return VAMP_CKPT_DAMAGED;
    }
    if (h5_attr_read_double(f, "version", &version) != 0 || (version != VAMP_CKPT_VERSION && version != 1)) {
        snprintf(err, errlen, "%s: attribute version is %g, expected %d (corrupt file?)", path, version,
                 VAMP_CKPT_VERSION);
        return VAMP_CKPT_DAMAGED;
    }
    if (version == 1) {
        snprintf(err, errlen, "%s: checkpoint format version 1, written by an older vamp_mpi; this one reads version "
                 "%d only (checksums over every attribute, the identity of the data). Resume it with the vamp_mpi "
                 "that wrote it, or start afresh (--resume none, or another run.dir)", path, VAMP_CKPT_VERSION);
        return VAMP_CKPT_REFUSED;
    }
    return 0;
}

/* Why a progress record cannot be, or NULL: its fields must agree with each other and with this run's epoch
 * length (spe steps per epoch). */
static const char *progress_inconsistency(const ckpt_record *rec, long spe)
{
    const vamp_progress *p = &rec->p;
    if (rec->adam_step != rec->step) return "adam_step must equal step";
    if (p->it > spe) return "it exceeds the steps per epoch";
    if (p->nsteps > p->it) return "nsteps exceeds it";
    if (rec->step + p->skipped != (long)(p->epoch - 1) * spe + p->it)
        return "step + skipped must equal (epoch - 1) x steps per epoch + it";
    if (p->best_epoch > p->epoch - 1 || p->since_best > p->epoch - 1)
        return "best_epoch or since_best exceeds the epochs done";
    if ((p->best_epoch == 0) != (p->best_val == INFINITY)) return "best_epoch and best_val disagree";
    return NULL;
}

/* The progress record, field by field through FIELDS (present, in range), then the checksum over every
 * attribute, then the record's own consistency. */
static int read_progress(hid_t f, const char *path, long spe, ckpt_record *rec, char *err, size_t errlen)
{
    memset(rec, 0, sizeof *rec);
    for (size_t i = 0; i < NFIELDS; i++) {
        const ckpt_field *fd = &FIELDS[i];
        double x;
        if (h5_attr_read_double(f, fd->name, &x) != 0) {
            snprintf(err, errlen, "%s: attribute %s is missing or unreadable", path, fd->name);
            return VAMP_CKPT_DAMAGED;
        }
        if (!(x >= fd->lo && x <= fd->hi) || (fd->type != F_DOUBLE && x != floor(x))) {
            snprintf(err, errlen, "%s: attribute %s = %.17g is outside its range (%s from %.15g to %.15g): corrupt file",
                     path, fd->name, x, fd->type == F_DOUBLE ? "a number" : "a whole number", fd->lo, fd->hi);
            return VAMP_CKPT_DAMAGED;
        }
        field_set(rec, fd, x);
    }
    /* every attribute (the record, config, provenance, the buffers' CRCs) against the checksum over them */
    uint32_t want = 0, have = 0;
    if (h5_attr_read_u32(f, "crc32_attrs", &want) != 0) {
        snprintf(err, errlen, "%s: attribute crc32_attrs is missing or unreadable", path);
        return VAMP_CKPT_DAMAGED;
    }
    if (attrs_crc(f, &have) != 0 || have != want) {
        snprintf(err, errlen, "%s: checksum mismatch in the attributes (crc32_attrs): the progress record, "
                 "configuration or provenance is corrupt", path);
        return VAMP_CKPT_DAMAGED;
    }
    const char *bad = progress_inconsistency(rec, spe);
    if (bad) {
        snprintf(err, errlen, "%s: inconsistent progress record (step %ld, epoch %d, it %ld, %ld steps per epoch): "
                 "%s", path, rec->step, rec->p.epoch, rec->p.it, spe, bad);
        return VAMP_CKPT_DAMAGED;
    }
    return 0;
}

static int is_fixed_key(const char *key)
{
    for (size_t k = 0; k < sizeof FIXED_KEYS / sizeof FIXED_KEYS[0]; k++)
        if (!strcmp(key, FIXED_KEYS[k])) return 1;
    return 0;
}

/* The stored configuration against this run's: no key of FIXED_KEYS may differ. */
static int check_config(hid_t f, const char *path, const vamp_config *now, char *err, size_t errlen)
{
    char *text = h5_attr_read_string(f, "config");
    vamp_config saved;
    char cerr[512];
    int ok = text && config_load_text(&saved, text, "checkpoint config", cerr, sizeof cerr) == 0;
    free(text);
    if (!ok) {
        snprintf(err, errlen, "%s: its stored configuration is unreadable", path);
        return VAMP_CKPT_DAMAGED;
    }
    int keys[VAMP_CONFIG_KEYS];
    int n = config_diff(&saved, now, keys, VAMP_CONFIG_KEYS);
    char refused[2048] = "", key[64];
    for (int i = 0; i < n && i < VAMP_CONFIG_KEYS; i++)
        if (is_fixed_key(config_key_name(keys[i], key, sizeof key)))
            snprintf(refused + strlen(refused), sizeof refused - strlen(refused), "%s%s", refused[0] ? ", " : "", key);
    if (!refused[0]) return 0;
    snprintf(err, errlen, "%s was written with a different model or data order; these keys differ: %s "
             "(only keys such as train.epochs, train.patience, eval.* or checkpoint.* may change on resume)", path,
             refused);
    return VAMP_CKPT_REFUSED;
}

/* The data the checkpoint was written for: the training split must be the same; valid/test too where their row
 * counts are (their limits may change on resume). */
static int check_data(const char *path, const vamp_data_id *was, const vamp_data_id *id, const char *data_path,
                      char *err, size_t errlen)
{
    for (int s = 0; s < 3; s++) {
        int differs = was->pixels != id->pixels || (s == 0 && was->rows[0] != id->rows[0]) ||
                      (was->rows[s] == id->rows[s] && was->crc[s] != id->crc[s]);
        if (!differs) continue;
        snprintf(err, errlen, "%s was written for other data: data.path = %s now has a %s split of %ld rows x %ld "
                 "pixels with CRC-32 %08x, the checkpoint's had %ld x %ld with CRC-32 %08x (a different file at the "
                 "same path? restore the original, or start afresh with --resume none or another run.dir)", path,
                 data_path, SPLIT_NAMES[s], id->rows[s], id->pixels, (unsigned)id->crc[s], was->rows[s], was->pixels,
                 (unsigned)was->crc[s]);
        return VAMP_CKPT_REFUSED;
    }
    return 0;
}

/* One group's tensors into buf (the whole layout), against its checksum. */
static int read_group(hid_t f, const char *path, const vamp_layout *l, ckpt_group g, float *buf, char *err,
                      size_t errlen)
{
    for (int i = 0; i < l->n; i++) {
        const vamp_tensor *T = &l->t[i];
        char dn[VAMP_NAME_LEN + 16];
        snprintf(dn, sizeof dn, "%s/%s", GROUP_NAMES[g], T->name);
        hsize_t want[VAMP_MAX_DIMS], dims[H5IO_MAX_DIMS];
        tensor_dims(T, want);
        int nd;
        int rc = h5_dataset_read_f32(f, dn, T->ndim, want, buf + T->offset, &nd, dims);
        if (rc == H5IO_MISSING) snprintf(err, errlen, "%s: dataset /%s is missing", path, dn);
        char need[96];
        if (rc == H5IO_SHAPE)
            snprintf(err, errlen, "%s: dataset /%s has another shape than the model's %s", path, dn,
                     shape_text(need, sizeof need, want, T->ndim));
        if (rc == H5IO_UNREADABLE)
            snprintf(err, errlen, "%s: dataset /%s cannot be read (truncated or corrupt?)", path, dn);
        if (rc != 0) return VAMP_CKPT_DAMAGED;
    }
    char an[32];
    snprintf(an, sizeof an, "crc32_%s", GROUP_NAMES[g]);
    uint32_t crc = 0;
    if (h5_attr_read_u32(f, an, &crc) != 0 || crc != crc_of(buf, l->total * sizeof(float))) {
        snprintf(err, errlen, "%s: checksum mismatch in /%s: the file is corrupt", path, GROUP_NAMES[g]);
        return VAMP_CKPT_DAMAGED;
    }
    return 0;
}

/* Rank 0: opens and checks path, fills rec and bufs (the whole layout each). Returns 0 or a VAMP_CKPT_* verdict
 * with err. */
static int read_checkpoint_file(const char *path, const vamp_trainer *t, const vamp_data_id *id, ckpt_record *rec,
                                float *const bufs[NGROUPS], char *err, size_t errlen)
{
    if (H5Fis_hdf5(path) <= 0) {
        snprintf(err, errlen, "%s: not a readable HDF5 file (truncated or corrupt?)", path);
        return VAMP_CKPT_DAMAGED;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        snprintf(err, errlen, "%s: cannot be opened as HDF5 (truncated or corrupt?)", path);
        return VAMP_CKPT_DAMAGED;
    }
    int rc = read_header(f, path, err, errlen);
    if (rc == 0) rc = read_progress(f, path, t->steps_per_epoch, rec, err, errlen);
    if (rc == 0) rc = check_config(f, path, &t->cfg, err, errlen);
    if (rc == 0) rc = check_data(path, &rec->data, id, t->cfg.data_path, err, errlen);
    for (int g = 0; rc == 0 && g < NGROUPS; g++) rc = read_group(f, path, &t->model.layout, g, bufs[g], err, errlen);
    if (H5Fclose(f) < 0 && rc == 0) {
        snprintf(err, errlen, "%s: cannot be closed (truncated or corrupt?)", path);
        rc = VAMP_CKPT_DAMAGED;
    }
    return rc;
}

/* Collective: rank 0's record and buffers into t and p; each rank receives the Adam moments of the tensors it
 * owns. */
static void share_checkpoint(vamp_trainer *t, vamp_progress *p, ckpt_record *rec, float *const bufs[NGROUPS])
{
    const size_t N = t->model.layout.total;
    CHECK_MPI(MPI_Bcast(rec, (int)sizeof *rec, MPI_BYTE, 0, t->comm));
    t->step = rec->step;
    t->opt.step = rec->adam_step;
    *p = rec->p;
    if (t->rank == 0) {
        memcpy(t->params, bufs[GROUP_PARAMS], N * sizeof(float));
        memcpy(t->best, bufs[GROUP_BEST], N * sizeof(float));
    }
    bcast_floats(t->params, N, t->comm);
    bcast_floats(t->best, N, t->comm);
    const vamp_reducer *r = &t->red;
    CHECK_MPI(MPI_Scatterv(bufs[GROUP_ADAM_M], r->counts, r->displs, MPI_FLOAT, t->adam_m, r->counts[t->rank],
                           MPI_FLOAT, 0, t->comm));
    CHECK_MPI(MPI_Scatterv(bufs[GROUP_ADAM_V], r->counts, r->displs, MPI_FLOAT, t->adam_v, r->counts[t->rank],
                           MPI_FLOAT, 0, t->comm));
}

int checkpoint_read(const char *path, vamp_trainer *t, vamp_progress *p, const vamp_data_id *id, char *err,
                    size_t errlen)
{
    float *bufs[NGROUPS] = {NULL};
    ckpt_record rec;
    memset(&rec, 0, sizeof rec);
    char msg[VAMP_MSG_LEN] = "";
    int rc = 0;
    if (t->rank == 0) {
        for (int g = 0; g < NGROUPS; g++) bufs[g] = xmalloc(t->model.layout.total * sizeof(float));
        rc = read_checkpoint_file(path, t, id, &rec, bufs, msg, sizeof msg);
    }
    /* rank 0's verdict is everyone's */
    CHECK_MPI(MPI_Bcast(&rc, 1, MPI_INT, 0, t->comm));
    if (rc != 0) {
        CHECK_MPI(MPI_Bcast(msg, sizeof msg, MPI_CHAR, 0, t->comm));
        snprintf(err, errlen, "%s", msg);
    } else {
        share_checkpoint(t, p, &rec, bufs);
    }
    for (int g = 0; g < NGROUPS; g++) free(bufs[g]);
    return rc;
}
