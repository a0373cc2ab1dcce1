/* vamp_mpi: trains a VAE/HVAE with a VampPrior (or a standard / MoG prior) data-parallel over MPI, or
 * evaluates a trained one (--eval). Only wiring: arguments -> config -> data, then run_eval (trainer ->
 * saved parameters -> results_write) or run_training (trainer -> resume -> train_epochs -> results_write). */
#include "vamp/check.h"
#include "vamp/checkpoint.h"
#include "vamp/config.h"
#include "vamp/data.h"
#include "vamp/epochs.h"
#include "vamp/provenance.h"
#include "vamp/results.h"
#include "vamp/build_info.h"
#include "vamp/runlog.h"
#include "vamp/ticker.h"
#include "vamp/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <getopt.h>
#include <unistd.h>

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
            "configuration), metrics.csv (one row per epoch), ckpt-<step>.h5 checkpoints with latest/best pointers,\n"
            "final.h5 (best parameters, torch state_dict names, test metrics as attributes, per-image test\n"
            "log-likelihoods, KL per unit), samples.png, reconstructions.png, pseudo_inputs.png, pictures.h5 (unless\n"
            "eval.pictures = no).\n"
            "The last lines printed are `key = value` results (test_ll, test_elbo, active units, ...).\n"
            "\n"
            "Re-running the command of a finished run (final.h5 of the same configuration, training over) prints its\n"
            "results and exits 0 without writing (but the pictures, if a stop came while they were drawn); with\n"
            "train.epochs raised, training continues from its last checkpoint.\n"
            "\n"
            "options (each as --opt value or --opt=value):\n"
            "  --set section.key=value  override one configuration key (repeatable; wins over the file)\n"
            "  --resume auto|none|PATH  continue from a checkpoint: auto (default) takes the newest valid one in\n"
            "                           run.dir (falling back to older ones); none starts afresh, moving the files of\n"
            "                           an earlier run in run.dir (checkpoints, final.h5, ...) to run.dir/previous-N\n"
            "  --eval PATH              evaluate saved parameters (RUN_DIR/final.h5 or a file) on the test set\n"
            "                           without training; config from CONFIG.ini, else config.ini beside them;\n"
            "                           writes eval.h5 beside the parameters\n"
            "  --progress SECONDS       rank 0 prints a progress line (batch k of n, images/s, ETA of the epoch and,\n"
            "                           at most, of the run; the same for the evaluation phases) every SECONDS;\n"
            "                           default 10 when the output is a terminal, 60 when it is a file or a pipe (a\n"
            "                           Slurm log); 0: none. Whole lines, never a carriage return; one line per\n"
            "                           epoch is always printed. It changes no result.\n"
            "  --help                   this text\n"
            "  --version                version and build: git commit, compiler, OpenBLAS core and configuration,\n"
            "                           MPI and HDF5 libraries (also in the run log and in every HDF5 file written)\n"
            "\n"
            "signals: SIGTERM, SIGUSR1 or SIGINT reaching the ranks stop them at the next step with a checkpoint (a\n"
            "second SIGINT aborts). Open MPI's mpirun forwards SIGUSR1 at once, but answers SIGTERM/SIGINT (Ctrl-C) by\n"
            "killing the ranks (SIGTERM, then SIGKILL 1 s later: --mca odls_base_sigkill_timeout gives more) and\n"
            "exits with 1. Under a batch system send SIGUSR1 to mpirun. See README, \"Checkpoints and resume\".\n"
            "exit status: 0 done; 1 runtime failure (a file could not be written, non-finite gradient; also mpirun's\n"
            "own status after SIGTERM/SIGINT); 2 bad input (config, data, parameter or checkpoint file, a checkpoint\n"
            "refused for this run; nothing was written); 75 stopped by a signal after writing\n"
            "a checkpoint: run the same command again to resume\n");
}

/* The only global state: a signal handler can only talk through globals. stop_signal is read at step
 * boundaries, where all ranks agree on it with an allreduce. Once training is over and its last checkpoint is
 * written (training_over), there is nothing left to save: a signal then ends the rank at once, resumably. */
static volatile sig_atomic_t stop_signal = 0;
static volatile sig_atomic_t training_over = 0;
static volatile sig_atomic_t signal_rank = 0; /* who says so on stderr (write(2) is safe in a handler) */

static void on_signal(int sig)
{
    if (training_over) { /* the rerun redoes only the evaluation */
        static const char msg[] = "vamp_mpi: stop signal during the final evaluation: training is checkpointed; "
                                  "exiting with status 75 (run the same command again to redo the evaluation)\n";
        if (signal_rank == 0 && write(2, msg, sizeof msg - 1) < 0) _exit(VAMP_EXIT_RESUMABLE);
        _exit(VAMP_EXIT_RESUMABLE);
    }
    if (sig == SIGINT && stop_signal) _exit(130);  /* a second Ctrl-C aborts at once */
    stop_signal = sig;
}

static void install_signal_handlers(int rank)
{
    signal_rank = rank;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

typedef struct {
    const char *cfg_path;  /* CONFIG.ini (NULL: with --eval, config.ini beside the parameters) */
    const char *resume;    /* --resume: "auto" (default), "none" or a checkpoint path */
    const char *eval_path; /* --eval PATH, or NULL to train */
    const char *sets[MAX_SETS];
    int nset;
    double progress;       /* --progress: seconds between progress lines; < 0: 10 on a terminal, else 60 */
} vamp_args;

static const struct option LONG_OPTIONS[] = {
    {"set", required_argument, NULL, 's'},     {"resume", required_argument, NULL, 'r'},
    {"eval", required_argument, NULL, 'e'},    {"progress", required_argument, NULL, 'p'},
    {"help", no_argument, NULL, 'h'},          {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0}};

/* An unknown option as a message, with the nearest known one when it looks like a typo. */
static void unknown_option(const char *arg, MPI_Comm comm)
{
    char word[64];
    snprintf(word, sizeof word, "%.*s", (int)strcspn(arg, "="), arg);
    const char *names[8];
    char dashed[8][24];
    int n = 0;
    for (const struct option *o = LONG_OPTIONS; o->name; o++, n++) {
        snprintf(dashed[n], sizeof dashed[n], "--%s", o->name);
        names[n] = dashed[n];
    }
    const char *near = config_closest(word, names, n);
    if (near) vamp_input_error(comm, "unknown option \"%s\" (did you mean %s?; see vamp_mpi --help)", arg, near);
    vamp_input_error(comm, "unknown option \"%s\" (see vamp_mpi --help)", arg);
}

/* getopt_long: every option is "--opt value" or "--opt=value"; CONFIG.ini may stand anywhere. */
static void parse_args(vamp_args *a, int argc, char **argv, MPI_Comm comm)
{
    memset(a, 0, sizeof *a);
    a->resume = "auto";
    a->progress = -1.0;
    opterr = 0; /* our own messages, from rank 0 only */
    optind = 1;
    for (;;) {
        int c = getopt_long(argc, argv, ":h", LONG_OPTIONS, NULL);
        if (c == -1) break;
        const char *arg = argv[optind - 1 < argc ? optind - 1 : argc - 1]; /* the option just read */
        switch (c) {
        case 's':
            if (a->nset == MAX_SETS) vamp_input_error(comm, "more than %d --set options", MAX_SETS);
            a->sets[a->nset++] = optarg;
            break;
        case 'r': a->resume = optarg; break;
        case 'e': a->eval_path = optarg; break;
        case 'p': {
            char *end;
            a->progress = strtod(optarg, &end);
            if (end == optarg || *end || !(a->progress >= 0) || a->progress > 1e9)
                vamp_input_error(comm, "--progress %s: expected seconds between progress lines (0: none)", optarg);
            break;
        }
        case ':': vamp_input_error(comm, "%s needs an argument (see vamp_mpi --help)", arg);
        case '?': unknown_option(arg, comm);
        default: break; /* --help, --version: answered before MPI_Init */
        }
    }
    for (int i = optind; i < argc; i++) {
        if (a->cfg_path)
            vamp_input_error(comm, "more than one config file given: \"%s\" and \"%s\"", a->cfg_path, argv[i]);
        a->cfg_path = argv[i];
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

/* Collective. --eval: the saved parameters on the test set; eval.h5 and eval_ pictures beside them. */
static int run_eval(const vamp_config *cfg, vamp_data *data, const char *params_path, const char *ini,
                    double progress, MPI_Comm comm)
{
    int rank, size;
    CHECK_MPI(MPI_Comm_rank(comm, &rank));
    CHECK_MPI(MPI_Comm_size(comm, &size));
    vamp_trainer tr;
    trainer_init(&tr, cfg, data, comm);
    tr.progress_every = progress;
    params_read(params_path, &tr.model.layout, tr.params, comm);
    log0(comm, "vamp_mpi %s: evaluating %s on %ld test images, %d rank(s)\n", VAMP_VERSION, params_path,
         data->test.n, size);
    vamp_provenance prov;
    provenance_collect(&prov, comm);
    if (rank == 0) provenance_print(stdout, "build ", &prov);
    char out[VAMP_FILE_PATH_LEN + 16], dir[VAMP_FILE_PATH_LEN]; /* eval.h5 and the pictures go beside the parameters */
    const char *slash = strrchr(params_path, '/');
    if (slash) {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - params_path), params_path);
        snprintf(out, sizeof out, "%s/eval.h5", dir);
    } else {
        snprintf(dir, sizeof dir, ".");
        snprintf(out, sizeof out, "eval.h5");
    }
    liveness_start(dir, cfg->peer_timeout, comm); /* no other run writes there from here on */
    results_write(&tr, data, ini, NULL, 0, out, dir, "eval_");
    trainer_free(&tr);
    return 0;
}

/* Collective. Training from a fresh start or a checkpoint, then the evaluation of the best parameters into
 * final.h5. Returns 0, or VAMP_EXIT_RESUMABLE after a stop signal. */
static int run_training(const vamp_config *cfg, vamp_data *data, const vamp_args *args, const char *ini,
                        MPI_Comm comm)
{
    int rank, size;
    CHECK_MPI(MPI_Comm_rank(comm, &rank));
    CHECK_MPI(MPI_Comm_size(comm, &size));
    log0(comm, "vamp_mpi %s: %d rank(s), config %s\n%s", VAMP_VERSION, size, args->cfg_path, ini);
    vamp_provenance prov;
    provenance_collect(&prov, comm);
    if (rank == 0) provenance_print(stdout, "build ", &prov);
    log0(comm, "data: %s (%s, %dx%d): train %ld, valid %ld, test %ld images\n", cfg->data_path,
         data->binary ? "binary" : "gray", data->height, data->width, data->train.n, data->valid.n, data->test.n);
    vamp_trainer tr;
    trainer_init(&tr, cfg, data, comm); /* its checks (sizes, memory) come before anything is written */
    tr.progress_every = args->progress;
    const size_t N = tr.model.layout.total;
    log0(comm, "model: %s, prior %s, likelihood %s, %zu parameters in %d tensors; %ld steps per epoch\n",
         config_model_name(cfg->model_type), config_prior_name(cfg->prior), config_likelihood_name(cfg->likelihood),
         N, tr.model.layout.n, tr.steps_per_epoch);

    vamp_progress p;
    progress_fresh(&p);
    vamp_data_id data_id;
    checkpoint_data_id(&data_id, data, comm);
    liveness_start(cfg->run_dir, cfg->peer_timeout, comm); /* no other run in run.dir from here on */
    training_resume(&tr, &p, args->resume, &data_id, comm);
    char final_path[VAMP_FILE_PATH_LEN];
    snprintf(final_path, sizeof final_path, "%s/final.h5", cfg->run_dir);
    if (strcmp(args->resume, "none") != 0 && results_saved(&tr, final_path, ini, tr.step, training_is_over(&tr, &p))) {
        results_finish_pictures(&tr, data, final_path, cfg->run_dir); /* all that a stop can have left undone */
        trainer_free(&tr); /* a finished run: its results are printed, nothing else is written */
        return 0;
    }
    /* every check has passed: only now is anything written to run.dir */
    if (!strcmp(args->resume, "none")) run_dir_set_aside(cfg->run_dir, comm);
    run_dir_prepare(cfg->run_dir, ini, comm);
    int status = train_epochs(&tr, &p, &data_id, ini, &stop_signal);
    if (status == 0) {
        training_over = 1;
        if (vamp_any(comm, stop_signal != 0)) {
            log0(comm, "stop signal: training is over and checkpointed (step %ld); exiting with status %d before "
                 "the evaluation (resumable)\n", tr.step, VAMP_EXIT_RESUMABLE);
            status = VAMP_EXIT_RESUMABLE;
        }
    }
    if (status == 0) {
        memcpy(tr.params, tr.best, N * sizeof(float)); /* evaluate the best parameters */
        log0(comm, "evaluating the parameters of epoch %d on %ld test images\n", p.best_epoch, data->test.n);
        vamp_attr more[] = {{"epochs", p.epoch - 1, 1}, {"best_epoch", p.best_epoch, 1}, {"steps", (double)tr.step, 1},
                            {"train_seconds", p.train_seconds, 0}, {"best_val_loss", p.best_val, 0}};
        char path[VAMP_FILE_PATH_LEN];
        snprintf(path, sizeof path, "%s/final.h5", cfg->run_dir);
        results_write(&tr, data, ini, more, (int)(sizeof more / sizeof more[0]), path, cfg->run_dir, "");
        log0(comm, "epochs = %d\nbest_epoch = %d\ntrain_seconds = %.1f\n", p.epoch - 1, p.best_epoch,
             p.train_seconds);
    }
    trainer_free(&tr);
    return status;
}

/* --help and --version work without MPI: returns 1 if one of them was answered. */
static int early_option(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(argv[i], "--version")) {
            vamp_provenance prov;
            provenance_collect(&prov, MPI_COMM_NULL);
            printf("vamp_mpi %s\n", VAMP_VERSION);
            provenance_print(stdout, "  ", &prov);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (early_option(argc, argv)) return 0; /* before MPI_Init, so --help works anywhere */
    vamp_mpi_init(&argc, &argv); /* MPI-IO settings for long paths, ulimit -v check (check.c) */
    MPI_Comm comm = MPI_COMM_WORLD;
    int rank, size;
    CHECK_MPI(MPI_Comm_rank(comm, &rank));
    CHECK_MPI(MPI_Comm_size(comm, &size));

    vamp_args args;
    parse_args(&args, argc, argv, comm);
    if (args.progress < 0) args.progress = ticker_default_every(); /* rank 0's view is the one that prints */
    char params_path[VAMP_FILE_PATH_LEN] = "", eval_cfg[VAMP_FILE_PATH_LEN] = "";
    if (args.eval_path) {
        eval_paths(args.eval_path, params_path, eval_cfg, sizeof params_path);
        if (!args.cfg_path) args.cfg_path = eval_cfg;
    }

    vamp_config cfg;
    char err[2048];
    if (config_load(&cfg, args.cfg_path, args.sets, args.nset, err, sizeof err) != 0) vamp_input_error(comm, "%s", err);
    if (config_validate(&cfg, size, err, sizeof err) != 0) vamp_input_error(comm, "%s", err);
    const size_t ini_len = 65536;
    char *ini = xmalloc(ini_len);
    if (config_to_ini(&cfg, ini, ini_len) < 0) vamp_fatal(__FILE__, __LINE__, "config_to_ini", "buffer too small");

    vamp_data data;
    /* training: from here a stop signal is noted (and acted on at the first step boundary) instead of killing the
     * rank, so that one arriving while the data loads still ends in a checkpoint and status 75 */
    if (!args.eval_path) install_signal_handlers(rank);
    data_load(&data, &cfg, comm); /* every input check happens before anything is written */
    int status = args.eval_path ? run_eval(&cfg, &data, params_path, ini, args.progress, comm)
                                : run_training(&cfg, &data, &args, ini, comm);
    data_free(&data);
    free(ini);
    if (status != 0) {
        MPI_Finalize();
        return status;
    }
    CHECK_MPI(MPI_Finalize());
    return 0;
}
