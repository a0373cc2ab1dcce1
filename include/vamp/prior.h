/* Log-density of the top latent under a mixture of K diagonal Gaussians with uniform weights, the shape shared
 * by the MoG prior (components are parameters) and the VampPrior (components are encodings of pseudo-inputs),
 * plus the standard normal. The log-sum-exp over components is the stable max-shifted one. It does not know
 * where its component parameters come from: the model/trainer wires that. */
#ifndef VAMP_PRIOR_H
#define VAMP_PRIOR_H

/* logp (B) = log 1/K sum_k N(z_b; pm_k, exp(plv_k)). resp (B,K) receives the responsibilities
 * softmax_k(log N(z_b; pm_k, plv_k)), needed by the backward pass. */
void mixture_log_prob_forward(float *logp, float *resp, const float *z, const float *pm, const float *plv, int B,
                              int K, int Z);
/* With upstream weight w (B): dz (B,Z) += w d logp/dz ; dpm (K,Z) += ... ; dplv (K,Z) += ...
 * Any d-output may be NULL. */
void mixture_log_prob_backward(float *dz, float *dpm, float *dplv, const float *w, const float *z,
                               const float *pm, const float *plv, const float *resp, int B, int K, int Z);

#endif
