/* Configuration: one table of keys (section, name, type, range, default) drives parsing, --set overrides,
 * validation messages and the resolved INI text, so the four cannot drift apart. INI syntax by inih. */
#include "vamp/config.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { K_INT, K_LONG, K_U64, K_FLOAT, K_DOUBLE, K_STRING, K_ENUM } key_kind;

typedef struct {
    const char *section, *name;
    key_kind kind;
    size_t offset;      /* into vamp_config */
    double lo, hi;      /* numeric range (inclusive) */
    const char *choices; /* K_ENUM: "a|b|c", value = index */
    const char *def;     /* the default, as written in an INI file */
} key_def;

#define F(field) offsetof(vamp_config, field)
static const key_def KEYS[] = {
    {"run", "dir", K_STRING, F(run_dir), 0, 0, NULL, "runs/default"},
    {"run", "seed", K_U64, F(seed), 0, 18446744073709551615.0, NULL, "1"},
    {"run", "peer_timeout", K_DOUBLE, F(peer_timeout), 0, 1e9, NULL, "600"},
    {"data", "path", K_STRING, F(data_path), 0, 0, NULL, "data/fashion_mnist.h5"},
    {"data", "binarize", K_ENUM, F(binarize), 0, 0, "dynamic|static|none", "dynamic"},
    {"data", "stripes", K_INT, F(stripes), 1, 4096, NULL, "4"},
    {"data", "train_limit", K_LONG, F(train_limit), 0, 1e12, NULL, "0"},
    {"data", "valid_limit", K_LONG, F(valid_limit), 0, 1e12, NULL, "0"},
    {"data", "test_limit", K_LONG, F(test_limit), 0, 1e12, NULL, "0"},
    {"model", "type", K_ENUM, F(model_type), 0, 0, "vae|hvae|convhvae|pixelhvae", "hvae"},
    {"model", "likelihood", K_ENUM, F(likelihood), 0, 0, "bernoulli|logistic256", "bernoulli"},
    {"model", "hidden", K_INT, F(hidden), 1, 100000, NULL, "300"},
    {"model", "z1", K_INT, F(z1), 1, 4096, NULL, "40"},
    {"model", "z2", K_INT, F(z2), 1, 4096, NULL, "40"},
    {"prior", "type", K_ENUM, F(prior), 0, 0, "standard|mog|vampprior|vampprior_data", "vampprior"},
    {"prior", "components", K_INT, F(components), 1, 100000, NULL, "500"},
    {"prior", "pseudo_mean", K_FLOAT, F(pseudo_mean), -10, 10, NULL, "0.05"},
    {"prior", "pseudo_std", K_FLOAT, F(pseudo_std), 0, 10, NULL, "0.01"},
    {"train", "batch_size", K_INT, F(batch_size), 1, 1000000, NULL, "100"},
    {"train", "epochs", K_INT, F(epochs), 1, 1000000, NULL, "2000"},
    {"train", "max_steps", K_LONG, F(max_steps), 0, 1e15, NULL, "0"},
    {"train", "lr", K_FLOAT, F(lr), 1e-12, 10, NULL, "5e-4"},
    {"train", "warmup", K_INT, F(warmup), 0, 1000000, NULL, "100"},
    {"train", "optimizer", K_ENUM, F(optimizer), 0, 0, "adamnormgrad|adam", "adamnormgrad"},
    {"train", "reduce", K_ENUM, F(reduce), 0, 0, "exact|fast", "exact"},
    {"train", "patience", K_INT, F(patience), 0, 1000000, NULL, "50"},
    {"train", "on_nan", K_ENUM, F(on_nan), 0, 0, "stop|skip", "stop"},
    {"eval", "samples", K_INT, F(eval_samples), 0, 10000000, NULL, "5000"},
    {"eval", "block", K_INT, F(eval_block), 1, 100000, NULL, "500"},
    {"eval", "batch", K_INT, F(eval_batch), 1, 100000, NULL, "500"},
    {"eval", "pictures", K_ENUM, F(pictures), 0, 0, "yes|no", "yes"},
    {"eval", "pictures_every", K_INT, F(pictures_every), 0, 1000000, NULL, "0"},
    {"checkpoint", "every_steps", K_LONG, F(ckpt_every_steps), 0, 1e15, NULL, "0"},
    {"checkpoint", "every_minutes", K_DOUBLE, F(ckpt_every_minutes), 0, 1e9, NULL, "30"},
    {"checkpoint", "keep", K_INT, F(ckpt_keep), 1, 1000, NULL, "2"},
};
#undef F
#define NKEYS ((int)(sizeof KEYS / sizeof KEYS[0]))

_Static_assert(sizeof KEYS / sizeof KEYS[0] <= VAMP_CONFIG_KEYS, "raise VAMP_CONFIG_KEYS");

static int set_value(vamp_config *c, const key_def *k, const char *value);

/* ---- "did you mean": the closest known word by edit distance, if it is close enough to be a typo ---- */

/* Levenshtein distance of a and b (each cut at 63 characters: names are short). */
static int edit_distance(const char *a, const char *b)
{
    int la = (int)strnlen(a, 63), lb = (int)strnlen(b, 63), row[64];
    for (int j = 0; j <= lb; j++) row[j] = j;
    for (int i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= lb; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

/* Keeps cand in best/best_d if it is nearer to word than the best so far and near enough to be a typo: at
 * most 1 edit for words of up to 4 characters, 2 up to 8, 3 beyond. */
static void consider(const char *word, const char *cand, char *best, size_t len, int *best_d)
{
    size_t n = strlen(word);
    int limit = n <= 4 ? 1 : n <= 8 ? 2 : 3, d = edit_distance(word, cand);
    if (d <= limit && d < *best_d) {
        *best_d = d;
        snprintf(best, len, "%s", cand);
    }
}

const char *config_closest(const char *word, const char *const *cands, int n)
{
    char best[160] = "";
    int best_d = 1 << 30, at = -1;
    for (int i = 0; i < n; i++) {
        int before = best_d;
        consider(word, cands[i], best, sizeof best, &best_d);
        if (best_d < before) at = i;
    }
    return at >= 0 ? cands[at] : NULL;
}

/* " (did you mean X?)" with the closest enum choice, section, key of `section` or "section.key" of any section
 * (what: 'c' choices of k, 's' sections, 'k' keys of section, 'f' full names), or "" if none is close. */
static const char *did_you_mean(char what, const char *word, const key_def *k, const char *section, char *out,
                                size_t len)
{
    char best[160] = "", cand[160];
    int best_d = 1 << 30;
    if (what == 'c') {
        for (const char *p = k->choices; p && *p;) {
            size_t n = strcspn(p, "|");
            snprintf(cand, sizeof cand, "%.*s", (int)n, p);
            consider(word, cand, best, sizeof best, &best_d);
            p = p[n] ? p + n + 1 : NULL;
        }
    } else {
        for (int i = 0; i < (int)(sizeof KEYS / sizeof KEYS[0]); i++) {
            if (what == 's') snprintf(cand, sizeof cand, "%s", KEYS[i].section);
            else if (what == 'k' && !strcmp(KEYS[i].section, section)) snprintf(cand, sizeof cand, "%s", KEYS[i].name);
            else if (what == 'f') snprintf(cand, sizeof cand, "%s.%s", KEYS[i].section, KEYS[i].name);
            else continue;
            consider(word, cand, best, sizeof best, &best_d);
        }
    }
    if (best[0]) snprintf(out, len, " (did you mean %s%s%s?)", what == 's' ? "[" : "", best, what == 's' ? "]" : "");
    else out[0] = '\0';
    return out;
}

static const char *choice_name(const char *choices, int idx, char *buf, size_t len)
{
    const char *p = choices;
    for (int i = 0; i < idx && p; i++) {
        p = strchr(p, '|');
        if (p) p++;
    }
    if (!p) return "?";
    size_t n = strcspn(p, "|");
    snprintf(buf, len, "%.*s", (int)n, p);
    return buf;
}

static const char *allowed(const key_def *k, char *buf, size_t len)
{
    switch (k->kind) {
    case K_ENUM: snprintf(buf, len, "one of %s", k->choices); break;
    case K_STRING: snprintf(buf, len, "a non-empty path of at most 1023 characters"); break;
    case K_INT:
    case K_LONG: snprintf(buf, len, "an integer from %.0f to %.0f", k->lo, k->hi); break;
    case K_U64: snprintf(buf, len, "an integer from 0 to 18446744073709551615"); break;
    default: snprintf(buf, len, "a number from %g to %g", k->lo, k->hi); break;
    }
    return buf;
}

/* Every key at its default (the table's last column, parsed like any value). */
void config_defaults(vamp_config *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < NKEYS; i++)
        if (set_value(c, &KEYS[i], KEYS[i].def) != 0)
            fprintf(stderr, "vamp_mpi: config.c: the default of %s.%s is not allowed\n", KEYS[i].section, KEYS[i].name);
    snprintf(c->source, sizeof c->source, "(defaults)");
}

/* Parses `value` into the field of key k. Returns 0, or -1 if it is not an allowed value. */
static int set_value(vamp_config *c, const key_def *k, const char *value)
{
    char *field = (char *)c + k->offset, *end = NULL;
    if (k->kind == K_STRING) {
        if (!value[0] || strlen(value) >= VAMP_PATH_LEN) return -1;
        strcpy(field, value);
        return 0;
    }
    if (k->kind == K_ENUM) {
        char buf[64];
        for (int i = 0;; i++) {
            const char *name = choice_name(k->choices, i, buf, sizeof buf);
            if (!strcmp(name, "?")) return -1;
            if (!strcmp(name, value)) {
                *(int *)field = i;
                return 0;
            }
        }
    }
    if (!value[0]) return -1;
    errno = 0;
    if (k->kind == K_U64) {
        if (value[0] == '-') return -1;
        unsigned long long v = strtoull(value, &end, 10);
        if (errno || *end) return -1;
        *(uint64_t *)field = v;
        return 0;
    }
    if (k->kind == K_INT || k->kind == K_LONG) {
        long long v = strtoll(value, &end, 10);
        if (errno || *end || v < k->lo || v > k->hi) return -1;
        if (k->kind == K_INT) *(int *)field = (int)v;
        else *(long *)field = (long)v;
        return 0;
    }
    double v = strtod(value, &end);
    if (errno || *end || !isfinite(v) || v < k->lo || v > k->hi) return -1;
    if (k->kind == K_FLOAT) *(float *)field = (float)v;
    else *(double *)field = v;
    return 0;
}

/* A value for a message: a long one (a path over the limit) is cut, with its length, so the message still ends
 * with what was expected. */
static const char *shown(const char *value, char *buf, size_t len)
{
    size_t n = strlen(value);
    if (n <= 100) snprintf(buf, len, "%s", value);
    else snprintf(buf, len, "%.60s... (%zu characters)", value, n);
    return buf;
}

static const key_def *find_key(const char *section, const char *name)
{
    for (int i = 0; i < NKEYS; i++)
        if (!strcmp(KEYS[i].section, section) && !strcmp(KEYS[i].name, name)) return &KEYS[i];
    return NULL;
}

static int section_known(const char *section)
{
    for (int i = 0; i < NKEYS; i++)
        if (!strcmp(KEYS[i].section, section)) return 1;
    return 0;
}

/* inih reads each line into a buffer of ini_max_line bytes (200 in its default build) and hands a longer line
 * over in pieces, each parsed as a line of its own: the tail of a long comment became a setting, a long path was
 * refused, and line numbers shifted. Debian's libinih makes the limit a run-time variable (CMake looks for it:
 * VAMP_INIH_MAX_LINE_VAR), which is raised to hold a path of the documented 1023 characters; with any inih, our
 * reader sees every whole line first and refuses one that does not fit, naming its line. */
#define VAMP_INI_MAX_LINE 4096

static void ini_settings(void)
{
#ifdef VAMP_INIH_MAX_LINE_VAR
    ini_use_stack = 0; /* a heap buffer of ini_initial_alloc bytes, fixed (no realloc) */
    ini_allow_realloc = 0;
    ini_initial_alloc = VAMP_INI_MAX_LINE;
    ini_max_line = VAMP_INI_MAX_LINE;
#endif
}

typedef struct {
    vamp_config *c;
    const char *path;
    FILE *f;
    const char *text;  /* reading from a string instead of f */
    char *buf;         /* f: the whole current line (getline) */
    size_t bufcap;
    int line;          /* line being parsed (counted by our reader) */
    int num;           /* inih's line buffer size */
    size_t too_long;   /* length of line `line` if it does not fit inih's buffer, else 0 */
    int nul;           /* line `line` holds a NUL byte */
    int set_line[VAMP_CONFIG_KEYS];  /* line where each key was set in this file, 0 = not yet */
    char *err;
    size_t errlen;
    int failed;
} parse_ctx;

/* inih's reader: one whole line into str (num bytes). A line that does not fit, or holds a NUL byte (inih would
 * silently drop the rest), ends the parse with p->too_long or p->nul set. */
static char *count_lines(char *str, int num, void *stream)
{
    parse_ctx *p = stream;
    const char *src;
    size_t n;
    p->num = num;
    if (p->f) {
        ssize_t got = getline(&p->buf, &p->bufcap, p->f);
        if (got <= 0) return NULL;
        src = p->buf;
        n = (size_t)got;
    } else {
        if (!*p->text) return NULL;
        src = p->text;
        n = strcspn(p->text, "\n");
        if (p->text[n] == '\n') n++;
        p->text += n;
    }
    p->line++;
    size_t content = n; /* without the line end: inih needs room for "\r\n\0" besides it */
    while (content > 0 && (src[content - 1] == '\n' || src[content - 1] == '\r')) content--;
    if (content + 3 > (size_t)num) {
        p->too_long = content;
        return NULL;
    }
    if (memchr(src, '\0', n)) {
        p->nul = 1;
        return NULL;
    }
    memcpy(str, src, n);
    str[n] = '\0';
    return str;
}

/* The parse's verdict beyond what on_key reports: an over-long line, a NUL byte, or inih's own syntax error. */
static int parse_verdict(const parse_ctx *p, int rc)
{
    if (p->failed) return -1;
    if (p->too_long) {
        snprintf(p->err, p->errlen, "%s:%d: this line has %zu characters; the longest line read is %d characters "
                 "(a longer one would be split into pieces that parse as lines of their own): shorten it", p->path,
                 p->line, p->too_long, p->num - 3);
        return -1;
    }
    if (p->nul) {
        snprintf(p->err, p->errlen, "%s:%d: this line holds a NUL byte: a config file is text", p->path, p->line);
        return -1;
    }
    if (rc != 0) {
        snprintf(p->err, p->errlen, "%s:%d: not an INI line (expected [section], key = value, or a ; comment)", p->path,
                 rc > 0 ? rc : p->line);
        return -1;
    }
    return 0;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    parse_ctx *p = user;
    if (p->failed) return 0;
    p->failed = 1;
    char buf[128];
    if (!section_known(section)) {
        char dym[200];
        snprintf(p->err, p->errlen, "%s:%d: unknown section [%s]%s: expected one of "
                 "[run] [data] [model] [prior] [train] [eval] [checkpoint]", p->path, p->line, section,
                 did_you_mean('s', section, NULL, NULL, dym, sizeof dym));
        return 0;
    }
    const key_def *k = find_key(section, name);
    if (!k) {
        char dym[200], full[160];
        did_you_mean('k', name, NULL, section, dym, sizeof dym);
        if (!dym[0]) { /* a key of another section? */
            snprintf(full, sizeof full, "%s.%s", section, name);
            did_you_mean('f', full, NULL, NULL, dym, sizeof dym);
            for (int i = 0; !dym[0] && i < NKEYS; i++)
                if (!strcmp(KEYS[i].name, name))
                    snprintf(dym, sizeof dym, " (did you mean [%s] %s?)", KEYS[i].section, name);
        }
        snprintf(p->err, p->errlen, "%s:%d: unknown key \"%s\" in [%s]%s (see configs/README.md for every key)",
                 p->path, p->line, name, section, dym);
        return 0;
    }
    int idx = (int)(k - KEYS);
    if (p->set_line[idx]) {
        snprintf(p->err, p->errlen, "%s:%d: [%s] %s is set again (first set on line %d)", p->path, p->line, section,
                 name, p->set_line[idx]);
        return 0;
    }
    if (set_value(p->c, k, value) != 0) {
        char vbuf[128], dym[200] = "";
        if (k->kind == K_ENUM) did_you_mean('c', value, k, NULL, dym, sizeof dym);
        snprintf(p->err, p->errlen, "%s:%d: [%s] %s = \"%s\"%s: expected %s", p->path, p->line, section, name,
                 shown(value, vbuf, sizeof vbuf), dym, allowed(k, buf, sizeof buf));
        return 0;
    }
    p->set_line[idx] = p->line;
    p->c->origin[idx] = p->line;
    p->failed = 0;
    return 1;
}

static int apply_set(vamp_config *c, const char *s, char *err, size_t errlen)
{
    const char *eq = strchr(s, '='), *dot = strchr(s, '.');
    if (!eq || !dot || dot > eq) {
        snprintf(err, errlen, "--set %s: expected section.key=value", s);
        return -1;
    }
    char section[64], name[64], buf[128];
    if ((size_t)(dot - s) >= sizeof section || (size_t)(eq - dot - 1) >= sizeof name) {
        snprintf(err, errlen, "--set %s: unknown key", s);
        return -1;
    }
    snprintf(section, sizeof section, "%.*s", (int)(dot - s), s);
    snprintf(name, sizeof name, "%.*s", (int)(eq - dot - 1), dot + 1);
    const key_def *k = find_key(section, name);
    if (!k) {
        char full[160], dym[200];
        snprintf(full, sizeof full, "%s.%s", section, name);
        snprintf(err, errlen, "--set %s: unknown key %s%s (see configs/README.md for every key)", s, full,
                 did_you_mean('f', full, NULL, NULL, dym, sizeof dym));
        return -1;
    }
    if (set_value(c, k, eq + 1) != 0) {
        char vbuf[128], dym[200] = "";
        shown(eq + 1, vbuf, sizeof vbuf);
        if (k->kind == K_ENUM) did_you_mean('c', eq + 1, k, NULL, dym, sizeof dym);
        snprintf(err, errlen, "--set %s.%s=%s: [%s] %s = \"%s\"%s: expected %s", section, name, vbuf, section, name,
                 vbuf, dym, allowed(k, buf, sizeof buf));
        return -1;
    }
    c->origin[k - KEYS] = -1;
    return 0;
}

/* Parses a file (f) or a string (text) named `name` in messages into c, over the values already there. */
static int parse_ini(vamp_config *c, const char *name, FILE *f, const char *text, char *err, size_t errlen)
{
    parse_ctx p;
    memset(&p, 0, sizeof p);
    p.c = c;
    p.path = name;
    p.f = f;
    p.text = text;
    p.err = err;
    p.errlen = errlen;
    ini_settings();
    int rc = ini_parse_stream(count_lines, &p, on_key, &p);
    free(p.buf);
    return parse_verdict(&p, rc);
}

int config_load(vamp_config *c, const char *path, const char *const *sets, int nset, char *err, size_t errlen)
{
    config_defaults(c);
    if (path) {
        snprintf(c->source, sizeof c->source, "%s", path);
        FILE *f = fopen(path, "r");
        if (!f) {
            snprintf(err, errlen, "cannot open config file \"%s\": %s", path, strerror(errno));
            return -1;
        }
        int rc = parse_ini(c, path, f, NULL, err, errlen);
        fclose(f);
        if (rc != 0) return -1;
    }
    for (int i = 0; i < nset; i++)
        if (apply_set(c, sets[i], err, errlen) != 0) return -1;
    return 0;
}

int config_load_text(vamp_config *c, const char *text, const char *name, char *err, size_t errlen)
{
    config_defaults(c);
    snprintf(c->source, sizeof c->source, "%s", name);
    return parse_ini(c, name, NULL, text, err, errlen);
}

static void format_value(const vamp_config *c, const key_def *k, char *val, size_t len);

int config_diff(const vamp_config *a, const vamp_config *b, int *keys, int maxkeys)
{
    int n = 0;
    for (int i = 0; i < NKEYS; i++) {
        char va[VAMP_FILE_PATH_LEN], vb[VAMP_FILE_PATH_LEN];
        format_value(a, &KEYS[i], va, sizeof va);
        format_value(b, &KEYS[i], vb, sizeof vb);
        if (strcmp(va, vb) == 0) continue;
        if (n < maxkeys) keys[n] = i;
        n++;
    }
    return n;
}

const char *config_key_name(int key, char *buf, size_t len)
{
    if (key < 0 || key >= NKEYS) snprintf(buf, len, "?");
    else snprintf(buf, len, "%s.%s", KEYS[key].section, KEYS[key].name);
    return buf;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* The refusal of more ranks than stripes, with the settings that would work: the smallest stripe count >= the
 * rank count that divides the batch (how evenly it falls on the ranks, and what it changes), or fewer ranks. */
static int too_many_ranks(const vamp_config *c, int nranks, char *err, size_t errlen)
{
    const char *src = c->source;
    int S = nranks;
    while (S <= c->batch_size && c->batch_size % S != 0) S++;
    if (S > c->batch_size)
        return fail(err, errlen, "%s: [data] stripes = %d is fewer than the %d ranks (every rank holds at least one "
                    "stripe), and no data.stripes >= %d divides train.batch_size = %d: run on at most %d ranks "
                    "(mpirun -np %d keeps this config's results), or raise train.batch_size to a multiple of %d", src,
                    c->stripes, nranks, nranks, c->batch_size, c->stripes, c->stripes, nranks);
    const int big = S % nranks, per = S / nranks; /* `big` ranks hold per + 1 stripes, the others per */
    char spread[256], comps[80] = "";
    if (big == 0)
        snprintf(spread, sizeof spread, "every rank holds %d stripe%s", per, per > 1 ? "s" : "");
    else
        snprintf(spread, sizeof spread, "%d rank%s hold %d stripes, %d hold %d: each step waits for the ranks with "
                 "%d, an ideal speed-up of %.1f over 1 rank on %d ranks", big, big > 1 ? "s" : "", per + 1, nranks - big, per,
                 per + 1, (double)S / (per + 1), nranks);
    if (config_prior_is_vamp(c->prior) && c->components < S)
        snprintf(comps, sizeof comps, " and prior.components >= %d", S);
    return fail(err, errlen, "%s: [data] stripes = %d is fewer than the %d ranks (every rank holds at least one "
                "stripe). Set data.stripes = %d%s (--set data.stripes=%d: the smallest count >= %d that divides "
                "train.batch_size = %d); then %s. Another data.stripes is another data order: a different run from "
                "this config's (the same statistics), bit-identical on any rank count up to %d. Or run on at most "
                "%d ranks (mpirun -np %d) to keep this config's results.", src, c->stripes, nranks, S, comps, S,
                nranks, c->batch_size, spread, S, c->stripes, c->stripes);
}

int config_validate(const vamp_config *c, int nranks, char *err, size_t errlen)
{
    const char *src = c->source;
    if (c->stripes < nranks) return too_many_ranks(c, nranks, err, errlen);
    if (c->batch_size % c->stripes != 0)
        return fail(err, errlen, "%s: [train] batch_size = %d is not divisible by [data] stripes = %d (every batch "
                    "takes the same number of images from each stripe)", src, c->batch_size, c->stripes);
    if (c->likelihood == LIK_LOGISTIC256 && c->binarize != BIN_NONE) {
        char o1[VAMP_FILE_PATH_LEN], o2[VAMP_FILE_PATH_LEN];
        return fail(err, errlen, "%s: [model] likelihood = logistic256 models grey levels: set [data] binarize = none "
                    "(it is %s, %s)", config_origin(c, "model", "likelihood", o1, sizeof o1),
                    c->binarize == BIN_DYNAMIC ? "dynamic" : "static", config_origin(c, "data", "binarize", o2, sizeof o2));
    }
    if (config_prior_is_vamp(c->prior) && c->components < c->stripes)
        return fail(err, errlen, "%s: [prior] components = %d is smaller than [data] stripes = %d (the pseudo-inputs "
                    "are cut into one chunk per stripe)", src, c->components, c->stripes);
    if (c->eval_samples > c->eval_block && c->eval_samples % c->eval_block != 0) {
        char o1[VAMP_FILE_PATH_LEN], o2[VAMP_FILE_PATH_LEN];
        return fail(err, errlen, "%s: [eval] samples = %d is not a multiple of [eval] block = %d (%s): choose a "
                    "block that divides the samples (a block larger than the samples is cut to them)",
                    config_origin(c, "eval", "samples", o1, sizeof o1), c->eval_samples, c->eval_block,
                    config_origin(c, "eval", "block", o2, sizeof o2));
    }
    if (c->pictures == PICTURES_NO && c->pictures_every > 0) {
        char o1[VAMP_FILE_PATH_LEN], o2[VAMP_FILE_PATH_LEN];
        return fail(err, errlen, "%s: [eval] pictures_every = %d asks for pictures during training, but [eval] "
                    "pictures = no (%s) turns them off: set one of the two", config_origin(c, "eval", "pictures_every",
                    o1, sizeof o1), c->pictures_every, config_origin(c, "eval", "pictures", o2, sizeof o2));
    }
    return 0;
}

int config_eval_block(const vamp_config *c)
{
    return c->eval_samples > 0 && c->eval_samples < c->eval_block ? c->eval_samples : c->eval_block;
}

const char *config_origin(const vamp_config *c, const char *section, const char *name, char *buf, size_t len)
{
    const key_def *k = find_key(section, name);
    int o = k ? c->origin[k - KEYS] : 0;
    if (o > 0) {
        snprintf(buf, len, "%s:%d", c->source, o);
    } else if (o < 0) {
        char val[VAMP_FILE_PATH_LEN];
        format_value(c, k, val, sizeof val);
        snprintf(buf, len, "--set %s.%s=%s", section, name, val);
    } else if (strcmp(c->source, "(defaults)") != 0) {
        snprintf(buf, len, "the default: not set in %s", c->source);
    } else {
        snprintf(buf, len, "the default");
    }
    return buf;
}

static void format_value(const vamp_config *c, const key_def *k, char *val, size_t len)
{
    const char *field = (const char *)c + k->offset;
    char tmp[64];
    switch (k->kind) {
    case K_INT: snprintf(val, len, "%d", *(const int *)field); break;
    case K_LONG: snprintf(val, len, "%ld", *(const long *)field); break;
    case K_U64: snprintf(val, len, "%llu", (unsigned long long)*(const uint64_t *)field); break;
    case K_FLOAT: { /* the shortest text that reads back as the same float */
        float f = *(const float *)field;
        for (int digits = 6; digits <= 9; digits++) {
            snprintf(val, len, "%.*g", digits, (double)f);
            if (strtof(val, NULL) == f) break;
        }
        break;
    }
    case K_DOUBLE: snprintf(val, len, "%.17g", *(const double *)field); break;
    case K_STRING: snprintf(val, len, "%s", field); break;
    case K_ENUM: snprintf(val, len, "%s", choice_name(k->choices, *(const int *)field, tmp, sizeof tmp)); break;
    }
}

int config_to_ini(const vamp_config *c, char *buf, size_t buflen)
{
    size_t used = 0;
    const char *section = "";
    for (int i = 0; i < NKEYS; i++) {
        const key_def *k = &KEYS[i];
        char val[VAMP_FILE_PATH_LEN];
        format_value(c, k, val, sizeof val);
        int n = strcmp(section, k->section)
                    ? snprintf(buf + used, buflen - used, "%s[%s]\n%s = %s\n", used ? "\n" : "", k->section, k->name, val)
                    : snprintf(buf + used, buflen - used, "%s = %s\n", k->name, val);
        if (n < 0 || (size_t)n >= buflen - used) return -1;
        used += (size_t)n;
        section = k->section;
    }
    return (int)used;
}

const char *config_model_name(vamp_model_type t)
{
    static const char *names[] = {"vae", "hvae", "convhvae", "pixelhvae"};
    return names[t];
}
const char *config_likelihood_name(vamp_likelihood l) { return l == LIK_LOGISTIC256 ? "logistic256" : "bernoulli"; }
const char *config_prior_name(vamp_prior_type p)
{
    static const char *names[] = {"standard", "mog", "vampprior", "vampprior_data"};
    return names[p];
}

int config_prior_is_vamp(vamp_prior_type p) { return p == PRIOR_VAMPPRIOR || p == PRIOR_VAMPPRIOR_DATA; }
