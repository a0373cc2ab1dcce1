/* The epoch loop, early stopping and the resume policy (see epochs.h). */
#include "vamp/epochs.h"
#include "vamp/check.h"
#include "vamp/pictures.h"
#include "vamp/runlog.h"
#include "vamp/ticker.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void progress_fresh(vamp_progress *p)
{
    memset(p, 0, sizeof *p);
    p->epoch = 1;
    p->best_val = INFINITY;
}

void training_resume(vamp_trainer *tr, vamp_progress *p, const char *how, const vamp_data_id *id, MPI_Comm comm)
{
    char err[2048];
    if (!strcmp(how, "none")) return;
    if (strcmp(how, "auto") != 0) {
        if (checkpoint_read(how, tr, p, id, err, sizeof err) != 0) vamp_input_error(comm, "--resume: %s", err);
        log0(comm, "resumed from %s: epoch %d, batch %ld, step %ld\n", how, p->epoch, p->it, tr->step);
        return;
    }
    char (*list)[VAMP_FILE_PATH_LEN] = xmalloc(VAMP_CKPT_MAX * sizeof *list);
    int rank, n = 0;
    CHECK_MPI(MPI_Comm_rank(comm, &rank));
    if (rank == 0) n = checkpoint_list(tr->cfg.run_dir, list, VAMP_CKPT_MAX);
    CHECK_MPI(MPI_Bcast(&n, 1, MPI_INT, 0, comm)); /* rank 0's listing: every rank then tries the same files */
    if (n > 0) CHECK_MPI(MPI_Bcast(list, n * (int)sizeof list[0], MPI_CHAR, 0, comm));
    for (int i = 0; i < n; i++) {
        int rc = checkpoint_read(list[i], tr, p, id, err, sizeof err);
        if (rc == 0) {
            log0(comm, "resumed from %s: epoch %d, batch %ld, step %ld\n", list[i], p->epoch, p->it, tr->step);
            break;
        }
        if (rc == VAMP_CKPT_REFUSED)
            vamp_input_error(comm, "cannot resume: %s (or start afresh with --resume none, or another run.dir)", err);
        log0(comm, "warning: cannot resume from %s: %s\n", list[i], err);
        log0(comm, "%s\n", i + 1 < n ? "falling back to the previous checkpoint" : "no valid checkpoint: starting afresh");
    }
    free(list);
}

int training_is_over(const vamp_trainer *tr, const vamp_progress *p)
{
    const vamp_config *cfg = &tr->cfg;
    return p->epoch > cfg->epochs || (cfg->max_steps > 0 && tr->step >= cfg->max_steps) ||
           (cfg->patience > 0 && p->since_best > cfg->patience);
}

/* One training run of the loop: the trainer, where it stands and what the checkpoints need. */
typedef struct {
    vamp_trainer *tr;
    vamp_progress *p;
    const vamp_data_id *id;
    const char *ini;
    volatile sig_atomic_t *stop;
    vamp_metrics metrics;
    double last_ckpt;   /* wall time of the last checkpoint (checkpoint.every_minutes) */
    double t0;          /* start of the epoch's time not yet added to the progress */
    int done;           /* training is over after this epoch (or this step) */
    vamp_ticker tick;   /* rank 0's progress lines in the epoch */
    long it0;           /* batch the epoch started from in this process (a resume starts part-way) */
    double val_seconds; /* the last validation's wall time, for the run's ETA (0: none yet) */
    int periodic_due;   /* a periodic checkpoint fell on the epoch's last step: written when it is closed */
} epoch_run;

/* Time since r->t0 into the epoch's and the total training time. */
static void add_time(epoch_run *r)
{
    double now = wall_seconds();
    r->p->epoch_seconds += now - r->t0;
    r->p->train_seconds += now - r->t0;
    r->t0 = now;
}

/* Rank 0 only, from its own clock (no MPI call): where the epoch stands, images/s, the ETA of the epoch and,
 * at most, of the run (train.epochs and train.max_steps bound it; early stopping may end it sooner). */
static void progress_line(epoch_run *r)
{
    const vamp_trainer *tr = r->tr;
    const vamp_progress *p = r->p;
    const vamp_config *cfg = &tr->cfg;
    if (!ticker_due(&r->tick) || p->it <= r->it0) return;
    const double per_step = (r->tick.last - r->tick.t0) / (double)(p->it - r->it0);
    long left_epoch = tr->steps_per_epoch - p->it, left_run = left_epoch + (long)(cfg->epochs - p->epoch) * tr->steps_per_epoch;
    if (cfg->max_steps > 0) {
        long cap = cfg->max_steps - tr->step;
        if (left_epoch > cap) left_epoch = cap;
        if (left_run > cap) left_run = cap;
    }
    const long epochs_left = cfg->max_steps > 0 ? 1 + left_run / tr->steps_per_epoch : cfg->epochs - p->epoch + 1;
    char e1[32], e2[32];
    printf("  epoch %d/%d  batch %ld/%ld (%.0f%%)  %.0f images/s  ETA epoch %s, run %s at most (%s; early stopping "
           "may end it sooner)\n", p->epoch, cfg->epochs, p->it, tr->steps_per_epoch,
           100.0 * (double)p->it / (double)tr->steps_per_epoch, cfg->batch_size / per_step,
           ticker_hms(left_epoch * per_step + r->val_seconds, e1, sizeof e1),
           ticker_hms(left_run * per_step + epochs_left * r->val_seconds, e2, sizeof e2),
           cfg->max_steps > 0 ? "train.max_steps" : "train.epochs");
    fflush(stdout);
}

/* A batch whose gradient is not finite: skipped (train.on_nan = skip), else the end of the program with a
 * checkpoint of the last good state (this step was not applied). */
static void bad_batch(epoch_run *r, vamp_elbo e)
{
    vamp_trainer *tr = r->tr;
    vamp_progress *p = r->p;
    const vamp_config *cfg = &tr->cfg;
    const char *what = e.bad_tensor >= 0 ? tr->model.layout.t[e.bad_tensor].name : "the loss";
    if (cfg->on_nan == ONNAN_SKIP) {
        log0(tr->comm, "epoch %d batch %ld: the gradient of %s is not finite; batch skipped (train.on_nan = "
             "skip)\n", p->epoch, p->it, what);
        p->it++;
        p->skipped++;
        return;
    }
    p->epoch_seconds += wall_seconds() - r->t0;
    checkpoint_write(tr, p, r->id, r->ini, 0); /* the last good state: this step was not applied */
    vamp_exit_error(tr->comm, 1, "epoch %d batch %ld: the gradient of %s is not finite (loss %g); stopped "
                    "with a checkpoint of the last good state in %s (train.on_nan = skip would skip such "
                    "batches)", p->epoch, p->it, what, e.loss, cfg->run_dir);
}

/* Collective. One batch, then the agreement on stopping and on a periodic checkpoint. Returns 1 when a stop
 * signal ended training (its checkpoint written), else 0. */
static int run_batch(epoch_run *r)
{
    vamp_trainer *tr = r->tr;
    vamp_progress *p = r->p;
    const vamp_config *cfg = &tr->cfg;
    vamp_elbo e = trainer_step(tr, p->epoch, p->it);
    if (e.bad_tensor >= 0 || !isfinite(e.loss)) {
        bad_batch(r, e);
        return 0;
    }
    p->sum_loss += e.loss;
    p->sum_re += e.re;
    p->sum_kl += e.kl;
    p->nsteps++;
    p->it++;
    progress_line(r);
    if (cfg->max_steps > 0 && tr->step >= cfg->max_steps) r->done = 1;
    /* one small allreduce per step: all ranks agree on stopping and on periodic checkpoints */
    int flags[2] = {*r->stop != 0,
                    (cfg->ckpt_every_steps > 0 && tr->step % cfg->ckpt_every_steps == 0) ||
                        (cfg->ckpt_every_minutes > 0 && wall_seconds() - r->last_ckpt > 60.0 * cfg->ckpt_every_minutes)};
    CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, flags, 2, MPI_INT, MPI_MAX, tr->comm));
    /* a periodic checkpoint due on the epoch's last step is written once the epoch is closed, not twice under
     * the same name */
    const int epoch_end = p->it == tr->steps_per_epoch;
    if (flags[1] && epoch_end) r->periodic_due = 1;
    if (!flags[0] && !(flags[1] && !r->done && !epoch_end)) return 0;
    add_time(r);
    checkpoint_write(tr, p, r->id, r->ini, 0);
    r->last_ckpt = wall_seconds();
    if (!flags[0]) return 0;
    log0(tr->comm, "stop signal: checkpoint %s/ckpt-%08ld.h5 written at epoch %d batch %ld; exiting with status %d "
         "(resumable)\n", cfg->run_dir, tr->step, p->epoch, p->it, VAMP_EXIT_RESUMABLE);
    return 1;
}

/* Early stopping as the reference: keep the best validation loss; the counter stays 0 during warm-up.
 * Returns whether the epoch improved on the best. */
static int early_stopping(epoch_run *r, double val_loss)
{
    vamp_trainer *tr = r->tr;
    vamp_progress *p = r->p;
    if (val_loss < p->best_val) {
        p->best_val = val_loss;
        p->best_epoch = p->epoch;
        p->since_best = 0;
        memcpy(tr->best, tr->params, tr->model.layout.total * sizeof(float));
        return 1;
    }
    p->since_best++;
    if (p->epoch < tr->cfg.warmup) p->since_best = 0;
    if (tr->cfg.patience > 0 && p->since_best > tr->cfg.patience) {
        log0(tr->comm, "early stopping: no improvement of the validation loss for %d epochs\n", p->since_best);
        r->done = 1;
    }
    return 0;
}

/* Collective. The end of an epoch: validation, its metrics row and log line, early stopping, pictures, then
 * the progress moves to the next epoch. Returns whether validation improved. */
static int close_epoch(epoch_run *r)
{
    vamp_trainer *tr = r->tr;
    vamp_progress *p = r->p;
    const vamp_config *cfg = &tr->cfg;
    double now = wall_seconds();
    p->epoch_seconds += now - r->t0;
    p->train_seconds += now - r->t0;
    vamp_elbo v = trainer_eval_elbo(tr, &tr->data->valid);
    r->val_seconds = wall_seconds() - now;
    float beta = trainer_beta(cfg, p->epoch);
    long ns = p->nsteps > 0 ? p->nsteps : 1;
    metrics_row(&r->metrics, p->epoch, tr->step, beta, p->sum_loss / ns, p->sum_re / ns, p->sum_kl / ns, v.loss,
                v.re, v.kl, wall_seconds() - now + p->epoch_seconds, p->nsteps * (double)cfg->batch_size / p->epoch_seconds);
    log0(tr->comm, "epoch %4d  step %7ld  beta %.3f  train %.3f (re %.3f kl %.3f)  valid %.3f (re %.3f kl %.3f)  "
         "%.1fs\n", p->epoch, tr->step, beta, p->sum_loss / ns, p->sum_re / ns, p->sum_kl / ns, v.loss, v.re, v.kl,
         wall_seconds() - now + p->epoch_seconds);
    int improved = early_stopping(r, v.loss);
    if (cfg->pictures_every > 0 && p->epoch % cfg->pictures_every == 0) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "epoch_%04d_", p->epoch);
        pictures_write(tr, tr->data, cfg->run_dir, prefix);
    }
    if (p->epoch >= cfg->epochs) r->done = 1;
    p->epoch++;
    p->it = 0;
    p->sum_loss = p->sum_re = p->sum_kl = 0.0;
    p->nsteps = 0;
    p->epoch_seconds = 0.0;
    return improved;
}

int train_epochs(vamp_trainer *tr, vamp_progress *p, const vamp_data_id *id, const char *ini,
                 volatile sig_atomic_t *stop)
{
    const vamp_config *cfg = &tr->cfg;
    epoch_run r = {.tr = tr, .p = p, .id = id, .ini = ini, .stop = stop};
    metrics_open(&r.metrics, cfg->run_dir, p->epoch, tr->comm);
    /* a resumed run may already be over (its checkpoint written when training ended) */
    r.done = training_is_over(tr, p);
    const int trained = !r.done;
    int last_improved = 0, ended_mid_epoch = 0;
    r.last_ckpt = wall_seconds();
    while (!r.done) {
        r.t0 = wall_seconds();
        ticker_start(&r.tick, tr->progress_every, tr->rank);
        r.it0 = p->it;
        r.periodic_due = 0;
        while (p->it < tr->steps_per_epoch && !r.done)
            if (run_batch(&r)) {
                metrics_close(&r.metrics);
                return VAMP_EXIT_RESUMABLE;
            }
        /* train.max_steps ended the epoch part-way: the state below (epoch closed) is not on the trajectory of a
         * longer run, so it must not become the end-of-training checkpoint */
        if (p->it < tr->steps_per_epoch) ended_mid_epoch = 1;
        int improved = close_epoch(&r);
        last_improved = improved;
        if ((improved || r.periodic_due) && !r.done) { /* and at the end of every epoch that improves validation */
            checkpoint_write(tr, p, id, ini, improved);
            r.last_ckpt = wall_seconds();
        }
    }
    /* the state at the end of training, so that a run stopped during the evaluation only redoes the evaluation */
    if (trained && !ended_mid_epoch) checkpoint_write(tr, p, id, ini, last_improved);
    metrics_close(&r.metrics);
    return 0;
}
