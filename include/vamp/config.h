/* The resolved run configuration: INI file (inih) + `--set section.key=value` overrides.
 * Every key has a default, a range and a line in configs/README.md. Parsing never asserts: a bad file, key or
 * value is reported with file, line, key and allowed values (exit 2, nothing written). */
#ifndef VAMP_CONFIG_H
#define VAMP_CONFIG_H

#include <stdint.h>
#include <stddef.h>

#define VAMP_PATH_LEN 1024 /* a configured path (run.dir, data.path): at most 1023 characters and the NUL */
/* A file named in such a directory, its temporary name included ("<run.dir>/ckpt-<step>.h5.tmp"): every buffer that
 * holds a path vamp_mpi builds has this size. */
#define VAMP_FILE_PATH_LEN (VAMP_PATH_LEN + 256)

#define VAMP_CONFIG_KEYS 64 /* at least the number of keys: enough room for config_diff's keys[] */

typedef enum { MODEL_VAE = 0, MODEL_HVAE = 1, MODEL_CONVHVAE = 2, MODEL_PIXELHVAE = 3 } vamp_model_type;
typedef enum { LIK_BERNOULLI = 0, LIK_LOGISTIC256 = 1 } vamp_likelihood;
typedef enum { PRIOR_STANDARD = 0, PRIOR_MOG = 1, PRIOR_VAMPPRIOR = 2, PRIOR_VAMPPRIOR_DATA = 3 } vamp_prior_type;
typedef enum { BIN_DYNAMIC = 0, BIN_STATIC = 1, BIN_NONE = 2 } vamp_binarize;
typedef enum { OPT_ADAMNORMGRAD = 0, OPT_ADAM = 1 } vamp_optimizer;
typedef enum { REDUCE_EXACT = 0, REDUCE_FAST = 1 } vamp_reduce;
typedef enum { ONNAN_STOP = 0, ONNAN_SKIP = 1 } vamp_on_nan;
typedef enum { PICTURES_YES = 0, PICTURES_NO = 1 } vamp_pictures;

typedef struct {
    /* [run] */
    char run_dir[VAMP_PATH_LEN];       /* run.dir: output directory (created), default "runs/default" */
    uint64_t seed;            /* run.seed: default 1 */
    double peer_timeout;      /* run.peer_timeout: seconds a rank waits in one MPI call before ending the job (0 = forever), default 600 */
    /* [data] */
    char data_path[VAMP_PATH_LEN];     /* data.path: HDF5 from vamp_prepare, default "data/fashion_mnist.h5" */
    vamp_binarize binarize;   /* data.binarize: dynamic|static|none, default dynamic */
    int stripes;              /* data.stripes: fixed data stripes, at least the rank count; default 4 */
    long train_limit;         /* data.train_limit: use only the first N training rows (0 = all), default 0 */
    long valid_limit;         /* data.valid_limit: same for validation, default 0 */
    long test_limit;          /* data.test_limit: same for test, default 0 */
    /* [model] */
    vamp_model_type model_type; /* model.type: vae|hvae|convhvae|pixelhvae, default hvae */
    vamp_likelihood likelihood; /* model.likelihood: bernoulli|logistic256, default bernoulli */
    int hidden;               /* model.hidden: units per gated layer, default 300 */
    int z1;                   /* model.z1: latent size (vae: z; hvae: z1), default 40 */
    int z2;                   /* model.z2: top latent size of hvae, default 40 */
    /* [prior] */
    vamp_prior_type prior;    /* prior.type: standard|mog|vampprior|vampprior_data, default vampprior */
    int components;           /* prior.components: K, default 500 */
    float pseudo_mean;        /* prior.pseudo_mean: init mean of pseudo-inputs, default 0.05 */
    float pseudo_std;         /* prior.pseudo_std: init std of pseudo-inputs (and vampprior_data noise), 0.01 */
    /* [train] */
    int batch_size;           /* train.batch_size: global batch, default 100; stripes must divide it */
    int epochs;               /* train.epochs: default 2000 */
    long max_steps;           /* train.max_steps: 0 = no limit */
    float lr;                 /* train.lr: default 5e-4 */
    int warmup;               /* train.warmup: KL warm-up epochs, default 100 (0 = beta 1 from the start) */
    vamp_optimizer optimizer; /* train.optimizer: adamnormgrad|adam */
    vamp_reduce reduce;       /* train.reduce: exact|fast, default exact */
    int patience;             /* train.patience: early-stopping epochs, default 50 (0 = off) */
    vamp_on_nan on_nan;       /* train.on_nan: stop|skip a step whose gradient is not finite, default stop */
    /* [eval] */
    int eval_samples;         /* eval.samples: importance samples for test LL, default 5000 (0 = skip) */
    int eval_block;           /* eval.block: samples per block in the IS estimate, default 500 */
    int eval_batch;           /* eval.batch: rows per block for validation/test ELBO, default 500 */
    vamp_pictures pictures;   /* eval.pictures: yes|no, draw the samples, reconstructions, pseudo-inputs at the end */
    int pictures_every;       /* eval.pictures_every: also draw pictures every N epochs (0: only at the end) */
    /* [checkpoint] */
    long ckpt_every_steps;    /* checkpoint.every_steps: 0 = off, default 0 */
    double ckpt_every_minutes;/* checkpoint.every_minutes: 0 = off, default 30 */
    int ckpt_keep;            /* checkpoint.keep: default 2 */

    char source[VAMP_PATH_LEN];        /* the config file name, for messages */
    int origin[VAMP_CONFIG_KEYS];      /* where each key's value came from, for messages (config_origin): 0 its
                                          default, > 0 that line of `source`, -1 a --set option */
} vamp_config;

/* Fill with defaults. */
void config_defaults(vamp_config *c);

/* Parse `path` (may be NULL: defaults only), then apply `nset` overrides "section.key=value".
 * On any error writes a message naming file, line (or "--set"), key and the allowed values into err
 * (errlen bytes) and returns -1; returns 0 on success. Not collective; does no I/O besides reading path. */
int config_load(vamp_config *c, const char *path, const char *const *sets, int nset, char *err, size_t errlen);

/* Where the value of key "section.name" came from, for a message: "FILE:LINE", "--set section.name=VALUE",
 * or "the default: not set in FILE" / "the default". Not collective. */
const char *config_origin(const vamp_config *c, const char *section, const char *name, char *buf, size_t len);

/* The samples per importance-sampling block actually used: eval.block, or eval.samples when that is smaller
 * (one block then holds every sample: the same result as eval.block = eval.samples). */
int config_eval_block(const vamp_config *c);

/* Cross-key checks that need the rank count (stripes >= nranks, batch % stripes, ...). Same error contract. */
int config_validate(const vamp_config *c, int nranks, char *err, size_t errlen);

/* Parse INI text (e.g. the config stored in a checkpoint), named `name` in messages; no --set. */
int config_load_text(vamp_config *c, const char *text, const char *name, char *err, size_t errlen);

/* How many keys differ between a and b (0: none); the first maxkeys of them go to keys[], as key indices in the
 * order of the key table (the order of config_to_ini). */
int config_diff(const vamp_config *a, const vamp_config *b, int *keys, int maxkeys);
/* "section.key" of key index `key` (from config_diff) in buf; "?" for an index out of range. */
const char *config_key_name(int key, char *buf, size_t len);

/* The resolved configuration as INI text ("[section]\nkey = value\n..."), every key, parseable by
 * config_load. Returns bytes written (excluding NUL) or -1 if buf is too small. */
int config_to_ini(const vamp_config *c, char *buf, size_t buflen);

/* The candidate nearest to `word` by edit distance if it is near enough to be a typo (at most 1 edit for a word
 * of up to 4 characters, 2 up to 8, 3 beyond), else NULL: for "did you mean" in messages. */
const char *config_closest(const char *word, const char *const *cands, int n);

/* Names for enums, as written in INI files. */
const char *config_model_name(vamp_model_type t);
const char *config_likelihood_name(vamp_likelihood l);
const char *config_prior_name(vamp_prior_type p);
/* Whether the prior's components are encodings of pseudo-inputs (vampprior, vampprior_data): the one place
 * that asks; the trainer's side of each prior is its row in prior_hooks.c. */
int config_prior_is_vamp(vamp_prior_type p);

#endif
