/* The paper's VAE and two-level HVAE (gated dense MLPs), its convolutional two-level HVAE (convhvae) and PixelHVAE
 * (pixelhvae: the convhvae's encoders under a PixelCNN decoder with BatchNorm) with their priors and likelihoods: parameter layout (torch state_dict names), initialisation, and the per-chunk
 * forward/backward of the ELBO.
 * It does not loop over data, reduce over ranks or update parameters (see train.h, reduce.h, optim.h).
 *
 * Naming: "top" latent = z (vae) or z2 (hvae): the one with the prior. Its encoder is q_z (vae) / q_z2 (hvae).
 * Loss per sample: re + beta * kl, re = -log p(x|z..), kl = log q(z..|x) - log p(z..) (both layers for hvae);
 * the chunk backward computes d(scale * sum_rows loss). */
#ifndef VAMP_MODEL_H
#define VAMP_MODEL_H

#include <stddef.h>
#include "vamp/config.h"
#include "vamp/conv.h"
#include "vamp/layout.h"

typedef struct { int W, b; } vamp_linear;   /* tensor indices in the layout (b = -1: no bias) */
typedef struct { vamp_linear h, g; } vamp_gated;

/* The encoder of the top latent: x -> GatedDense(D,H) -> GatedDense(H,H) -> mean, logvar (hardtanh -6..2). */
typedef struct {
    vamp_gated l1, l2;
    vamp_linear mean, logvar;
} vamp_top_encoder;

/* A GatedConv2d (the reference's): conv_h and conv_g, each weight (cout,cin,k,k) and bias (cout), and its geometry. */
typedef struct { vamp_linear h, g; vamp_conv geo; } vamp_gconv;

/* The PixelHVAE's PixelCNN: VAMP_PIXEL_LAYERS x (masked 3x3 conv without bias, BatchNorm2d, ReLU), 64 channels. */
#define VAMP_PIXEL_LAYERS 8
#define VAMP_PIXEL_CH 64
typedef struct {
    int W;                   /* pixelcnn.<3l>.weight (64, cin, 3, 3); cin = 3 for layer 0 ([x, map(z1), map(z2)]) */
    int gamma, beta;         /* pixelcnn.<3l+1>.weight, .bias (64) */
    int rmean, rvar;         /* pixelcnn.<3l+1>.running_mean, .running_var (64): layout buffers */
    char mask;               /* 'A' (layer 0: a pixel never sees itself) or 'B' */
    vamp_conv geo;           /* (cin, h, w) -> (64, h, w), padding 1 */
} vamp_pixel_layer;

/* GatedConv2d layers applied in order (the convhvae's two encoders of x and its decoder). */
#define VAMP_STACK_MAX 5
typedef struct { int n; vamp_gconv l[VAMP_STACK_MAX]; } vamp_conv_stack;

/* Activations of a stack for R images: layer i's pre-activation h, sigmoid gate g and output o, each
 * (R, cout_i, oh_i, ow_i); o[n-1] flattened is the stack's output. */
typedef struct { float *h[VAMP_STACK_MAX], *g[VAMP_STACK_MAX], *o[VAMP_STACK_MAX]; } vamp_stack_acts;

typedef struct {
    vamp_config cfg;     /* copy of the resolved config */
    size_t D;            /* input pixels */
    int H, Ztop, Z1, K;  /* hidden units, top latent size, hvae z1 size (0 for vae), prior components (0: standard) */
    int hvae, logistic, prior; /* flags: two levels; logistic256 likelihood (else Bernoulli); vamp_prior_type */
    int conv;            /* convhvae or pixelhvae (hvae is set too): convolutional encoders of x */
    int pixel;           /* pixelhvae (conv is set too): the PixelCNN decoder instead of the convhvae's */
    int height, width;   /* the image (1, height, width), D = height * width */
    int F;               /* convhvae: features of an encoder's flattened output, 6 ceil(h/4) ceil(w/4); else 0 */
    vamp_layout layout;  /* params, grads, Adam moments */

    vamp_top_encoder enc;                       /* q_z / q_z2 */
    vamp_gated q1_x, q1_z2, q1_joint;           /* hvae q(z1|x,z2) */
    vamp_linear q1_mean, q1_logvar;
    vamp_gated pz1_l1, pz1_l2;                  /* hvae p(z1|z2) */
    vamp_linear pz1_mean, pz1_logvar;
    vamp_gated px_l1, px_l2;                    /* vae p(x|z): l1 on z, l2 on hidden */
    vamp_gated px_z1, px_z2, px_joint;          /* hvae p(x|z1,z2) */
    vamp_linear px_mean, px_logvar;             /* px_logvar only for logistic256; convhvae: 1x1 Conv2d (1,64,1,1) */
    vamp_conv_stack enc_conv;                   /* convhvae q_z2_layers: x (1,h,w) -> (6,h/4,w/4), F features */
    vamp_conv_stack q1_conv;                    /* convhvae q_z1_layers_x: likewise, all k3 */
    vamp_gated px_pre;                          /* convhvae p_x_layers_joint_pre: GatedDense(2H, D) */
    vamp_conv_stack px_conv;                    /* convhvae p_x_layers_joint: (1,h,w) -> (64,h,w) */
    vamp_conv px_head;                          /* convhvae, pixelhvae: geometry of the 1x1 heads p_x_mean / p_x_logvar
                                                   (pixelhvae: bias on the Bernoulli mean only, as the reference) */
    vamp_pixel_layer pcnn[VAMP_PIXEL_LAYERS];   /* pixelhvae; its p_x_layers_z1 / _z2 (px_z1, px_z2) map to D */
    int pseudo;                                 /* "means.linear.weight" (D,K), vampprior*, else -1 */
    int mog_means, mog_logvars;                 /* "mog.means", "mog.logvars" (K,Ztop), mog, else -1 */
} vamp_model;

/* Activations of the top encoder for up to `rows` rows, with its own backward scratch. */
typedef struct {
    int rows;               /* capacity */
    float *h1, *g1, *o1;    /* (R,H) */
    float *h2, *g2, *o2;    /* (R,H) */
    float *mean;            /* (R,Ztop) */
    float *lv_pre, *logvar; /* (R,Ztop) before / after hardtanh(-6,2) */
    float *u;               /* (R,D) pseudo-inputs after hardtanh(0,1); pseudo encoder only */
    float *du;              /* (R,D) their gradient; pseudo encoder only */
    float *d_o1, *d_o2;     /* (R,H) backward scratch */
    float *d_lv;            /* (R,Ztop) */
    float *gscratch;        /* (2R,H) gated backward scratch */
    /* convhvae: h1..o2, d_o1, d_o2 and gscratch are NULL; instead */
    vamp_stack_acts cs;     /* the conv stack on x (or u); cs.o[4] (R,F) is the heads' input */
    float *cd[2];           /* (R, widest layer) backward ping-pong; cd[0] also the gradient of cs.o[4] */
    float *cscratch;        /* the stack's kernel scratch (gated_conv2d_scratch_floats of its widest layer) */
    float *buf;             /* the one allocation behind all of the above */
} vamp_enc_acts;

/* Everything the forward pass of a data chunk keeps for the backward pass, for up to `rows` rows. */
typedef struct {
    int rows;
    vamp_enc_acts enc;                  /* q_z / q_z2 on x */
    float *z_top, *eps_top;             /* (R,Ztop) eps_top copied from the caller */
    /* hvae q(z1|x,z2); convhvae: the branches are F wide, q1x_h, q1x_g are NULL and q1x_o is q1c.o[4] */
    float *q1x_h, *q1x_g, *q1x_o;       /* (R,H) */
    float *q1z_h, *q1z_g, *q1z_o;       /* (R,H) */
    float *q1_cat;                      /* (R,2H) [q1x_o | q1z_o] */
    vamp_stack_acts q1c;                /* convhvae: the x-branch's conv stack */
    float *q1j_h, *q1j_g, *q1j_o;       /* (R,H) */
    float *q1_mean, *q1_lv_pre, *q1_logvar, *z1, *eps1; /* (R,Z1) */
    /* hvae p(z1|z2) */
    float *pz1_h1, *pz1_g1, *pz1_o1, *pz1_h2, *pz1_g2, *pz1_o2; /* (R,H) */
    float *pz1_mean, *pz1_lv_pre, *pz1_logvar;                  /* (R,Z1) */
    /* p(x|...) */
    float *px_h1, *px_g1, *px_o1;       /* (R,H): vae layer 1 on z; hvae z1 branch */
    float *px_h2, *px_g2, *px_o2;       /* (R,H): vae layer 2; hvae z2 branch */
    float *px_cat;                      /* (R,2H) hvae [px_o1 | px_o2] */
    float *pxj_h, *pxj_g, *pxj_o;       /* (R,H) hvae joint; convhvae (R,D): joint_pre, the decoder stack's input */
    vamp_stack_acts pxc;                /* convhvae: the decoder stack, each (R,64,h,w), under the 1x1 heads */
    /* pixelhvae: px_h1..px_o2 are (R,D): the maps of z1 and z2; and */
    float *pin;                         /* (R,3,h,w) the PixelCNN's input [x | map(z1) | map(z2)] per image */
    float *pc[VAMP_PIXEL_LAYERS];       /* (R,64,h,w) layer l's masked conv output (BatchNorm's input) */
    float *po[VAMP_PIXEL_LAYERS];       /* (R,64,h,w) its BatchNorm + ReLU output */
    float *bn_mean, *bn_var, *bn_invstd; /* (L,64) training stages: the batch statistics of every layer */
    double *bn_part;                    /* (L, batchnorm2d_partial_len(64)) this chunk's partial sums, per layer */
    float *mask_a, *mask_b;             /* (64,3,3,3), (64,64,3,3) the masks of layer 0 and of the others */
    float *pd[3];                       /* (R,64,h,w) backward scratch */
    float *d_pin;                       /* (R,3,h,w) */
    float *x_pre, *x_mean;              /* (R,D) logits; sigmoid mean (clamped for logistic256) */
    float *xlv_pre, *x_logvar;          /* (R,D) logistic256 only */
    const float *x;                     /* (R,D) input of the last forward (not owned) */
    /* per-row terms */
    float *re, *kl;                     /* (R) */
    float *log_q_top, *log_p_top, *log_q1, *log_p1; /* (R) */
    float *resp;                        /* (R,K) mixture responsibilities */
    float *w_log_q, *w_log_p;           /* (R) d(scale * beta * kl) / d log q = scale * beta, / d log p = -that */
    /* backward: d_<name> is the gradient of the forward tensor <name> (d_top_*: of enc.mean, enc.logvar); the
     * (R,H) ones serve each block in turn */
    float *d_x_pre, *d_xlv_pre;         /* (R,D) d_xlv_pre: logistic256 only */
    float *d_head_in;                   /* (R,H) of the hidden layer under the heads being back-propagated */
    float *d_layer1;                    /* (R,H) of layer 1's output in a two-layer stack (vae p(x|z), p(z1|z2)) */
    float *d_branch1, *d_branch2;       /* (R,H) hvae: of the two branches under a joint layer */
    float *d_cat;                       /* (R,2H) hvae: of the joint layer's input [branch1 | branch2] */
    float *gscratch;                    /* (2R,H) gated backward scratch */
    /* convhvae: d_branch1, d_branch2 are (R,max(H,F)), d_cat (R,2max(H,F)), gscratch (2R,max(H,F,D)); and */
    float *d_pxj;                       /* (R,D) of pxj_o */
    float *cd[2];                       /* (R, widest layer of q1c, pxc) backward ping-pong */
    float *cscratch;                    /* kernel scratch of the q1 and decoder stacks and the 1x1 heads */
    float *d_z_top, *d_top_mean, *d_top_logvar;        /* (R,Ztop) */
    float *d_z1, *d_q1_mean, *d_q1_lv_pre, *d_q1_logvar; /* (R,Z1) */
    float *d_pz1_mean, *d_pz1_lv_pre, *d_pz1_logvar;     /* (R,Z1) */
    float *buf;                         /* the one allocation behind all of the above */
} vamp_acts;

/* Build the layout and tensor indices for config c and images (1, height, width). No allocation of parameters.
 * The MLP models see only D = height * width; a convhvae needs height, width >= 1 (dataset attributes). */
void model_init(vamp_model *m, const vamp_config *c, int height, int width);

/* Initialise params (layout.total floats) from keyed randomness (seed): He-normal Linear weights N(0, 2/fan_in),
 * Conv2d weights U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (torch's default, fan_in = cin k k, which the reference keeps),
 * biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as torch's default (the reference keeps it),
 * pseudo-inputs N(pseudo_mean, pseudo_std), mog means N(0,1) and logvars 0. Identical on every rank. */
void model_init_params(const vamp_model *m, float *params, uint64_t seed);

void acts_init(vamp_acts *a, const vamp_model *m, int rows);
void acts_free(vamp_acts *a);
void enc_acts_init(vamp_enc_acts *a, const vamp_model *m, int rows, int with_pseudo);
void enc_acts_free(vamp_enc_acts *a);
/* Floats the two would allocate (for up-front memory checks). */
size_t acts_floats(const vamp_model *m, int rows);
size_t enc_acts_floats(const vamp_model *m, int rows, int with_pseudo);

/* Pseudo-inputs [k0,k1) of the VampPrior: u = hardtanh_[0,1](means.linear.weight[:, k]) encoded by the top
 * encoder; writes pm, plv rows k0..k1 (pointers to row k0 of (K,Ztop) arrays). */
void model_pseudo_forward(const vamp_model *m, vamp_enc_acts *a, const float *params, int k0, int k1,
                          float *pm_rows, float *plv_rows);
/* Back-propagates dpm, dplv rows k0..k1 through the encoder and the hardtanh into grads (adds). */
void model_pseudo_backward(const vamp_model *m, vamp_enc_acts *a, const float *params, float *grads, int k0,
                           int k1, const float *dpm_rows, const float *dplv_rows);

/* Forward pass of a chunk of R rows: x (R,D), eps_top (R,Ztop), eps1 (R,Z1, hvae only; may be NULL for vae).
 * pm/plv (K,Ztop): prior components (vampprior: from model_pseudo_forward; mog: the parameters; standard:
 * NULL). Fills a->re, a->kl per row. Returns sum over rows of (re + beta*kl) as double. */
double model_forward(const vamp_model *m, vamp_acts *a, const float *params, const float *x, const float *eps_top,
                     const float *eps1, int R, const float *pm, const float *plv, float beta);
/* The two halves of model_forward, for importance sampling (one x, many samples): model_encode runs the
 * x-dependent layers (top encoder; hvae also the x-branch of q(z1|x,z2)) on R rows; model_encode_broadcast
 * copies row 0 of that encoding to rows 1..R-1; model_forward_encoded runs the rest on R rows (x (R,D) is
 * still needed by the likelihood). model_forward = model_encode + model_forward_encoded. */
void model_encode(const vamp_model *m, vamp_acts *a, const float *params, const float *x, int R);
void model_encode_broadcast(const vamp_model *m, vamp_acts *a, int R);
double model_forward_encoded(const vamp_model *m, vamp_acts *a, const float *params, const float *x,
                             const float *eps_top, const float *eps1, int R, const float *pm, const float *plv,
                             float beta);

/* The generative path for pictures: z_top (R,Ztop) given; hvae z1 = mean + sigma * eps1 under p(z1|z2) (eps1 NULL:
 * z1 = a->z1 as the last forward pass left it, for reconstructions); x_mean (R,D) receives the Bernoulli / logistic
 * mean. pixelhvae: the image is drawn pixel by pixel in raster order, each pixel from p(x_ij | x_<ij, z1, z2)
 * (BatchNorm with its running statistics) with noise keyed (seed, RNG_SAMPLE, 2, first + r, pixel), and x_mean
 * receives each pixel's conditional mean at the time it was drawn. */
void model_decode(const vamp_model *m, vamp_acts *a, const float *params, const float *z_top, const float *eps1,
                  int R, float *x_mean, uint64_t seed, uint64_t first);

/* Backward of scale * sum_rows (re + beta*kl) for the last forward: adds into grads (layout) and into
 * dpm/dplv (K,Ztop) for the prior components (may be NULL for standard). Not for the pixelhvae, whose
 * model_forward is the evaluation mode (no gradient): it trains through the stages below. */
void model_backward(const vamp_model *m, vamp_acts *a, const float *params, float *grads, float *dpm,
                    float *dplv, const float *pm, const float *plv, int R, float beta, float scale);

/* ---- Training mode in stages (the pixelhvae's BatchNorm) ------------------------------------------------------
 * model_forward of the pixelhvae is its evaluation mode: BatchNorm with the running statistics (the reference's
 * model.eval(), used for validation, the test log-likelihood and pictures). In training mode BatchNorm normalises
 * with the statistics of the WHOLE global batch, so a training chunk runs in L + 1 stages (L = model_sync_layers)
 * and the caller combines every chunk's partial sums in chunk order between stages (batchnorm2d_combine), the same
 * bits for any rank count:
 *   forward  s = 0 .. L:  stage 0 takes model_forward's arguments; stage s >= 1 first normalises layer s-1 with
 *            bn_total = the combine of every chunk's part of layer s-1 (a->bn_part + (s-1) len); stage s < L ends
 *            with this chunk's partial of layer s in a->bn_part + s len; stage L returns the loss sum (others 0).
 *   backward s = L .. 0:  stage L takes model_backward's arguments; stage s < L first applies layer s's backward
 *            with bn_total = the combine of every chunk's part of layer s; stage s >= 1 ends with this chunk's
 *            partial of layer s-1's backward sums in a->bn_part + (s-1) len.
 * For L = 0 (every other model) there is one stage each: model_forward and model_backward. */
int model_sync_layers(const vamp_model *m);      /* 8 for the pixelhvae, 0 otherwise */
size_t model_sync_len(const vamp_model *m);      /* doubles per partial: batchnorm2d_partial_len(64) */
double model_forward_stage(const vamp_model *m, vamp_acts *a, const float *params, const float *x,
                           const float *eps_top, const float *eps1, int R, const float *pm, const float *plv,
                           float beta, int s, const double *bn_total);
void model_backward_stage(const vamp_model *m, vamp_acts *a, const float *params, float *grads, float *dpm,
                          float *dplv, const float *pm, const float *plv, int R, float beta, float scale, int s,
                          const double *bn_total);
/* Once per training step, after layer s's forward combine (every rank alike): BatchNorm s's running statistics in
 * params (a layout buffer), torch's momentum 0.1 with the unbiased variance. */
void model_bn_running_update(const vamp_model *m, float *params, int s, const double *bn_total);
/* One chunk as the whole batch (its own statistics): all stages with each combine over this chunk alone. For tests
 * and tools; the trainer runs the stages. For L = 0, model_forward / model_backward. */
double model_forward_train(const vamp_model *m, vamp_acts *a, const float *params, const float *x,
                           const float *eps_top, const float *eps1, int R, const float *pm, const float *plv,
                           float beta);
void model_backward_train(const vamp_model *m, vamp_acts *a, const float *params, float *grads, float *dpm,
                          float *dplv, const float *pm, const float *plv, int R, float beta, float scale);
/* pixelhvae: zeroes the masked conv weights' masked taps (no-op otherwise). At initialisation and after every
 * update: the reference multiplies the weight by its mask before every forward, and its optimiser moves the
 * masked taps in between (their gradient is the full one, see conv.h). */
void model_apply_masks(const vamp_model *m, float *params);

#endif
