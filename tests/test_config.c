/* Config parsing: defaults, a full file, --set precedence, every error class with file/line/key/allowed values,
 * the INI round trip, the cross-key checks and the diff used on resume. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vamp/config.h"

static char path[256];

static void write_file(const char *text)
{
    snprintf(path, sizeof path, "/tmp/vamp_test_config_%d.ini", (int)getpid());
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void defaults(void **s)
{
    (void)s;
    vamp_config c;
    char err[512];
    assert_int_equal(config_load(&c, NULL, NULL, 0, err, sizeof err), 0);
    assert_int_equal(c.model_type, MODEL_HVAE);
    assert_int_equal(c.prior, PRIOR_VAMPPRIOR);
    assert_int_equal(c.components, 500);
    assert_int_equal(c.batch_size, 100);
    assert_true(c.lr == 5e-4f);
    assert_int_equal(c.warmup, 100);
    assert_int_equal(c.eval_samples, 5000);
    assert_int_equal(c.reduce, REDUCE_EXACT);
}

static void full_file_and_set(void **s)
{
    (void)s;
    write_file("; comment\n[run]\ndir = runs/x y\nseed = 18446744073709551615\n[model]\ntype = vae\n"
               "likelihood = logistic256 ; inline comment\n[data]\nbinarize = none\n[train]\nlr = 1e-3\n");
    vamp_config c;
    char err[512];
    const char *sets[] = {"train.lr=2e-3", "prior.type=mog"};
    assert_int_equal(config_load(&c, path, sets, 2, err, sizeof err), 0);
    assert_string_equal(c.run_dir, "runs/x y");
    assert_true(c.seed == 18446744073709551615ull);
    assert_int_equal(c.model_type, MODEL_VAE);
    assert_int_equal(c.likelihood, LIK_LOGISTIC256);
    assert_true(c.lr == 2e-3f); /* --set wins */
    assert_int_equal(c.prior, PRIOR_MOG);
    assert_int_equal(config_validate(&c, 2, err, sizeof err), 0);
}

static void expect_error(const char *text, const char *const *sets, int nset, const char *want)
{
    vamp_config c;
    char err[1024] = "";
    if (text) write_file(text);
    int rc = config_load(&c, text ? path : NULL, sets, nset, err, sizeof err);
    if (rc == 0 || !strstr(err, want)) print_error("wanted \"%s\", got rc %d, \"%s\"\n", want, rc, err);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, want));
}

static void errors(void **s)
{
    (void)s;
    char want[512];
    expect_error("[run]\ndir = a\n[modle]\ntype = vae\n", NULL, 0, "unknown section [modle]");
    snprintf(want, sizeof want, "%s:4: unknown key \"kind\" in [model]", path);
    expect_error("[run]\ndir = a\n[model]\nkind = vae\n", NULL, 0, want);
    snprintf(want, sizeof want, "%s:2: [model] type = \"vea\": expected one of vae|hvae|convhvae", path);
    expect_error("[model]\ntype = vea\n", NULL, 0, want);
    expect_error("[train]\nlr = 12abc\n", NULL, 0, ":2: [train] lr = \"12abc\": expected a number from");
    expect_error("[train]\nepochs = 0\n", NULL, 0, "[train] epochs = \"0\": expected an integer from 1 to");
    expect_error("[train]\nepochs = 99999999999999999999\n", NULL, 0, "expected an integer");
    expect_error("[train]\nlr = nan\n", NULL, 0, "[train] lr = \"nan\"");
    expect_error("[run]\nseed = -1\n", NULL, 0, "[run] seed = \"-1\"");
    expect_error("[run]\ndir =\n", NULL, 0, "[run] dir = \"\": expected a non-empty path");
    expect_error("[model]\nhidden = 3\nz1 = 4\nhidden = 5\n", NULL, 0, ":4: [model] hidden is set again (first set on line 2)");
    expect_error("[model]\nthis is not ini\n", NULL, 0, ":2: not an INI line");
    const char *s1[] = {"model.type"};
    expect_error(NULL, s1, 1, "--set model.type: expected section.key=value");
    const char *s2[] = {"modeltype=vae"};
    expect_error(NULL, s2, 1, "--set modeltype=vae: expected section.key=value");
    const char *s3[] = {"model.kind=vae"};
    expect_error(NULL, s3, 1, "--set model.kind=vae: unknown key model.kind");
    const char *s4[] = {"train.optimizer=sgd"};
    expect_error(NULL, s4, 1, "[train] optimizer = \"sgd\": expected one of adamnormgrad|adam");
    vamp_config c;
    char err[512];
    assert_int_equal(config_load(&c, "/nonexistent/x.ini", NULL, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open config file \"/nonexistent/x.ini\""));
}

static void validate(void **s)
{
    (void)s;
    vamp_config c;
    char err[2048]; /* as main's: the refusal of too many ranks is a long message */
    config_defaults(&c);
    assert_int_equal(config_validate(&c, 4, err, sizeof err), 0);
    assert_int_equal(config_validate(&c, 3, err, sizeof err), 0); /* uneven: 2 + 1 + 1 stripes */
    assert_int_equal(config_validate(&c, 16, err, sizeof err), -1);
    assert_non_null(strstr(err, "stripes = 4 is fewer than the 16 ranks"));
    assert_non_null(strstr(err, "--set data.stripes=20"));
    assert_non_null(strstr(err, "4 ranks hold 2 stripes, 12 hold 1"));
    assert_non_null(strstr(err, "mpirun -np 4"));
    assert_int_equal(config_validate(&c, 5, err, sizeof err), -1);
    assert_non_null(strstr(err, "--set data.stripes=5"));
    assert_non_null(strstr(err, "every rank holds 1 stripe"));
    assert_int_equal(config_validate(&c, 101, err, sizeof err), -1);
    assert_non_null(strstr(err, "no data.stripes >= 101 divides train.batch_size = 100"));
    c.batch_size = 10;
    assert_int_equal(config_validate(&c, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "batch_size = 10 is not divisible by [data] stripes = 4"));
    config_defaults(&c);
    c.likelihood = LIK_LOGISTIC256;
    assert_int_equal(config_validate(&c, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "binarize = none"));
    config_defaults(&c);
    c.components = 2;
    assert_int_equal(config_validate(&c, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "components = 2 is smaller than [data] stripes = 4"));
    config_defaults(&c);
    c.eval_block = 300;
    assert_int_equal(config_validate(&c, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "samples = 5000 is not a multiple of [eval] block = 300"));
}

static void round_trip_and_diff(void **s)
{
    (void)s;
    vamp_config a, b;
    char err[512], ini[16384], ini2[16384], name[64];
    int keys[VAMP_CONFIG_KEYS];
    const char *sets[] = {"run.dir=some dir", "train.lr=0.000123", "prior.type=vampprior_data", "run.seed=77",
                          "checkpoint.every_minutes=2.5", "data.train_limit=123"};
    assert_int_equal(config_load(&a, NULL, sets, 6, err, sizeof err), 0);
    assert_true(config_to_ini(&a, ini, sizeof ini) > 0);
    write_file(ini);
    assert_int_equal(config_load(&b, path, NULL, 0, err, sizeof err), 0);
    assert_true(config_to_ini(&b, ini2, sizeof ini2) > 0);
    assert_string_equal(ini, ini2);
    assert_int_equal(config_diff(&a, &b, keys, VAMP_CONFIG_KEYS), 0);
    assert_int_equal(config_load_text(&b, ini, "stored", err, sizeof err), 0);
    b.hidden = 7;
    b.epochs = 3;
    assert_int_equal(config_diff(&a, &b, keys, VAMP_CONFIG_KEYS), 2);
    assert_string_equal(config_key_name(keys[0], name, sizeof name), "model.hidden");
    assert_string_equal(config_key_name(keys[1], name, sizeof name), "train.epochs");
    assert_int_equal(config_to_ini(&a, ini, 10), -1); /* too small a buffer is reported, not overrun */
}

/* Long lines: a long comment is one comment (its tail never becomes a setting), a path of the documented 1023
 * characters is read whole from a file and from stored text, line numbers after a long line stay right, and a line
 * longer than the parser's buffer or one with a NUL byte is refused by its line number. */
static void long_lines(void **s)
{
    (void)s;
    static char text[12000], want[512], p1023[1024], p1024[1025];
    vamp_config c;
    char err[1024];
    memset(p1023, 'p', 1023);
    p1023[0] = '/';
    memset(p1024, 'q', 1024);
    char comment[400];
    memset(comment, 'x', sizeof comment - 1);
    comment[sizeof comment - 1] = '\0';
    snprintf(text, sizeof text, "; %s train_limit = 100\n[data]\npath = %s\n[model]\nhidden = 9\n", comment, p1023);
    write_file(text);
    assert_int_equal(config_load(&c, path, NULL, 0, err, sizeof err), 0);
    assert_int_equal(c.train_limit, 0);
    assert_int_equal(c.hidden, 9);
    assert_string_equal(c.data_path, p1023);
    assert_int_equal(config_load_text(&c, text, "stored", err, sizeof err), 0); /* a checkpoint's stored config */
    assert_string_equal(c.data_path, p1023);
    snprintf(text, sizeof text, "; %s\n[data]\npath = %s\n[model]\nhidden = x\n", comment, p1023);
    snprintf(want, sizeof want, "%s:5: [model] hidden = \"x\"", path);
    expect_error(text, NULL, 0, want);
    snprintf(text, sizeof text, "[data]\npath = %s\n", p1024);
    expect_error(text, NULL, 0, ":2: [data] path = \"qqqq");
    expect_error(text, NULL, 0, "(1024 characters)\": expected a non-empty path of at most 1023 characters");
    char set[1100];
    snprintf(set, sizeof set, "run.dir=%s", p1024);
    const char *sets[] = {set};
    expect_error(NULL, sets, 1, "(1024 characters)\": expected a non-empty path of at most 1023 characters");
    memset(text, 'y', 9000);
    memcpy(text, "[run]\n; ", 8);
    strcpy(text + 9000, "\nseed = 3\n");
    expect_error(text, NULL, 0, ":2: this line has 8994 characters; the longest line read is");
    assert_int_equal(config_load_text(&c, text, "stored", err, sizeof err), -1);
    assert_non_null(strstr(err, "stored:2: this line has 8994 characters"));
    write_file("[run]\nseed = 1\n");
    FILE *f = fopen(path, "a");
    fputs("dir = a", f);
    fputc('\0', f);
    fputs("b\n", f);
    fclose(f);
    vamp_config d;
    assert_int_equal(config_load(&d, path, NULL, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, ":3: this line holds a NUL byte"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults), cmocka_unit_test(full_file_and_set), cmocka_unit_test(errors),
        cmocka_unit_test(validate), cmocka_unit_test(round_trip_and_diff), cmocka_unit_test(long_lines),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(path);
    return rc;
}
