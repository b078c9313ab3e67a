/*
 * fl_kl.h -- the per-class terms of distillation_loss (T^2 KL(softmax(u / T) || softmax(x / T)), student x,
 * teacher u), the one place they are written: the row pass (fl_reduce.h's fl_row_kl_sums, fl_row_kl_grad)
 * and the class-major tiles (fl_tile.h's fl_tile_kl) both call them, in double whatever the data type
 * (the loss cancels by a factor ~T, see classification.pyx).
 *
 * With the row maxima mx, mu: a = (x - mx) / T, b = (u - mu) / T (both <= 0, or nan / -inf);
 *   the sums    ss += exp(a),  st += exp(b),  W += exp(b) (b - a)   (loss = T^2 (W / st - log(st / ss)))
 *   the gradient  g = scale (exp(a) / ss - exp(b) / st)             (scale = T * grad_scale)
 */
#ifndef FL_KL_H
#define FL_KL_H

#include "fl_math.h"

/* a and b of one class */
#define FL_KL_AB(x, u, mx, mu, inv_t) \
    const double a = ((double)(x) - (mx)) * (inv_t), b = ((double)(u) - (mu)) * (inv_t)

/* one class's terms added to the sums ss, st, W (lvalues) */
#define FL_KL_ADD(x, u, mx, mu, inv_t, ss, st, W)                                                      \
    do {                                                                                              \
        FL_KL_AB(x, u, mx, mu, inv_t);                                                                \
        const double eb = fl_exp_nonpos(b);                                                           \
        (ss) += fl_exp_nonpos(a);                                                                     \
        (st) += eb;                                                                                   \
        (W) += eb * (b - a);                                                                          \
    } while (0)

/* one class's gradient, from its row's sums */
static inline double fl_kl_grad(double x, double u, double mx, double mu, double inv_t, double ss, double st,
                                double scale) {
    FL_KL_AB(x, u, mx, mu, inv_t);
    return scale * (fl_exp_nonpos(a) / ss - fl_exp_nonpos(b) / st);
}

#endif /* FL_KL_H */
