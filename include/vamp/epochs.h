/* The training schedule around the step: where to start (the resume policy), the epoch loop with its
 * validation, metrics rows, periodic and best checkpoints, stop signals, non-finite gradients and early stopping.
 * It does not evaluate on the test set or write final.h5 (results.c does, after it). */
#ifndef VAMP_EPOCHS_H
#define VAMP_EPOCHS_H

#include <signal.h>
#include "vamp/checkpoint.h"
#include "vamp/train.h"

/* Not collective. The progress of a fresh run: epoch 1, batch 0, no best validation loss yet. */
void progress_fresh(vamp_progress *p);

/* Collective. --resume auto: the newest valid checkpoint of run.dir, falling back to older damaged ones (and
 * saying why); none there: a fresh start. A checkpoint refused for this run (changed keys, other data, older
 * format) stops the program: going back to an older one, or starting afresh over the run, is the user's call.
 * --resume PATH: that checkpoint or an input error. --resume none: fresh. Writes nothing. */
void training_resume(vamp_trainer *tr, vamp_progress *p, const char *how, const vamp_data_id *id, MPI_Comm comm);

/* Not collective. Whether training from p is over: past train.epochs or train.max_steps, or stopped early. */
int training_is_over(const vamp_trainer *tr, const vamp_progress *p);

/* Collective. Trains from p until train.epochs, train.max_steps or early stopping ends it, writing metrics.csv
 * rows, pictures (eval.pictures_every), checkpoints and, when training ends on an epoch boundary, the checkpoint of
 * the end of training. *stop is set by a signal handler; all ranks agree on it at every step. Returns 0, or
 * VAMP_EXIT_RESUMABLE when a stop signal ended it (a checkpoint was written). A non-finite gradient with
 * train.on_nan = stop ends the program (exit 1, after a checkpoint of the last good state).
 * On return 0, tr->best holds the parameters of the best validation loss and p the final progress. */
int train_epochs(vamp_trainer *tr, vamp_progress *p, const vamp_data_id *id, const char *ini,
                 volatile sig_atomic_t *stop);

#endif
