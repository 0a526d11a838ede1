"""Ledger entries for Apache MXNet 1.9 (Gluon, mx.optimizer through gluon.Trainer).

The optimizers' arithmetic lives in C++ operators (src/operator/optimizer_op-inl.h);
their Python classes (python/mxnet/optimizer/optimizer.py) only compute the step size.
"""

from __future__ import annotations

from suite.ledger.entry import Entry

MXNET = ("mxnet",)

ENTRIES: tuple[Entry, ...] = (
    Entry(
        id="mxnet-adam-epsilon",
        title="Adam: epsilon added before bias correction (epsilon hat, as Keras)",
        backends=MXNET,
        features=("optimizer:adam",),
        reference="p -= lr * m_hat / (sqrt(v_hat) + eps)",
        backend="p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)",
        source="python/mxnet/optimizer/optimizer.py (Adam.update: lr *= sqrt(coef2)/coef1); "
               "src/operator/optimizer_op-inl.h (AdamUpdateKernel)",
        conventions={"adam_epsilon": "keras"},
    ),
    Entry(
        id="mxnet-rmsprop-epsilon",
        title="RMSProp: epsilon inside the square root; centered keeps lr in its momentum",
        backends=MXNET,
        features=("optimizer:rmsprop",),
        reference="p -= lr * g / (sqrt(v) + eps); centered momentum: "
                  "buf = mom*buf + g/(sqrt(v - a^2) + eps), p -= lr*buf",
        backend="p -= lr * g / sqrt(v + eps) (rmsprop_update); centered (Graves): "
                "delta = gamma2*delta - lr*g/sqrt(v - a^2 + eps), p += delta "
                "(rmspropalex_update, gamma2 = momentum)",
        source="python/mxnet/optimizer/optimizer.py (RMSProp.update); "
               "src/operator/optimizer_op-inl.h (RMSPropUpdate, RMSPropAlexUpdate)",
        conventions={"rmsprop_epsilon": "inside_sqrt"},
    ),
    Entry(
        id="mxnet-adagrad-epsilon",
        title="AdaGrad: history starts at 0, epsilon inside the square root",
        backends=MXNET,
        features=("optimizer:adagrad",),
        reference="acc = initial + sum g^2; p -= lr * g / (sqrt(acc) + eps)",
        backend="history = sum g^2; p -= lr * g / sqrt(history + eps'), run with "
                "eps' = initial_accumulator_value + epsilon (the same as epsilon inside "
                "the root of an accumulator that starts at initial_accumulator_value)",
        source="python/mxnet/optimizer/optimizer.py (AdaGrad.create_state, AdaGrad.update)",
        conventions={"adagrad_epsilon": "inside_sqrt"},
    ),
    Entry(
        id="mxnet-sgd-momentum",
        title="SGD momentum: velocity holds -lr*buf (equal for a constant learning rate)",
        backends=MXNET,
        features=("optimizer:sgd",),
        reference="buf = mu*buf + g; p -= lr*buf",
        backend="v = mu*v - lr*g; p += v (sgd_mom_update); nesterov runs NAG: "
                "buf = mu*buf + g; p -= lr*(g + mu*buf)",
        source="src/operator/optimizer_op-inl.h (SGDMomKernel); "
               "python/mxnet/optimizer/optimizer.py (SGD, NAG)",
        conventions={"sgd_momentum": "keras"},
    ),
    Entry(
        id="mxnet-huber-scale",
        title="HuberLoss: Keras's huber divided by rho; the suite passes weight=rho",
        backends=MXNET,
        features=("loss:huber",),
        reference="0.5 r^2 if r <= delta else delta * (r - 0.5 delta)",
        backend="r^2 / (2 rho) if r <= rho else r - 0.5 rho, times weight = rho",
        source="python/mxnet/gluon/loss.py (HuberLoss.hybrid_forward)",
    ),
    Entry(
        id="mxnet-l2loss-half",
        title="L2Loss: 1/2 of the squared error; the suite passes weight=2",
        backends=MXNET,
        features=("loss:mse",),
        reference="mean over all elements of (z - y)^2",
        backend="0.5 (z - y)^2 averaged over a sample's units, times weight = 2, "
                "then the batch mean",
        source="python/mxnet/gluon/loss.py (L2Loss.hybrid_forward)",
    ),
    Entry(
        id="mxnet-softplus-threshold",
        title="softrelu: linear above 20 (as torch's Softplus)",
        backends=MXNET,
        features=("activation:softplus",),
        reference="softplus(z) = log(1 + exp(z))",
        backend="softrelu(z) = z where z > 20 (gradient 1)",
        source="src/operator/mshadow_op.h (softrelu, softrelu_grad)",
        conventions={"softplus": "torch_threshold"},
    ),
    Entry(
        id="mxnet-float32-attributes",
        title="float64 runs: operator attributes are single precision",
        backends=MXNET,
        # AdaGrad's update runs in Python with float64 scalars: nothing rounded
        features=("optimizer:sgd", "optimizer:adam", "optimizer:rmsprop",
                  "activation:leaky_relu", "activation:elu"),
        reference="every hyperparameter and constant in float64",
        backend="optimizer operators' lr, momentum, beta1/beta2, gamma1/gamma2, epsilon "
                "and LeakyReLU's slope (leaky_relu, elu alpha) are C++ float attributes: "
                "a float64 run uses their float32 roundings (lr 0.1 -> 0.10000000149, a "
                "relative 1.49e-8 in the first update); Adam's step size "
                "lr * sqrt(1 - b2^t) / (1 - b1^t) is computed in Python double and "
                "rounded to float32 as a whole",
        source="src/operator/optimizer_op-inl.h (SGDParam, NAGParam, AdamParam, "
               "RMSPropParam, RMSPropAlexParam: float fields); python/mxnet/optimizer/"
               "optimizer.py (Adam.update: lr *= sqrt(coef2)/coef1); "
               "src/operator/leaky_relu-inl.h (LeakyReLUParam::slope)",
        conventions={"mxnet_float32_attributes": "mxnet"},
        dtypes=("float64",),
    ),
    Entry(
        id="mxnet-float32-gelu",
        title="float64 runs: GELU is computed entirely in float32",
        backends=MXNET,
        features=("activation:gelu",),
        reference="z * Phi(z) in float64",
        backend="DType(0.5f * float(z) * (1.0f + erff(float(z) / sqrt 2))): the whole "
                "activation in float32 (its output matches that float32 formula bit for "
                "bit, 6e-7 absolute from the float64 one for |z| < 10), which no float64 "
                "reference convention reproduces to 1e-9: float64 gelu fails",
        source="src/operator/mshadow_op.h (gelu, gelu_grad); "
               "src/operator/leaky_relu-inl.h (act_type gelu)",
        dtypes=("float64",),
    ),
    Entry(
        id="mxnet-onednn",
        title="float32 runs: operators on oneDNN (MKL-DNN), log_softmax among them",
        backends=MXNET,
        features=("dtype:float32",),
        reference="every operator in float32 by its formula, e.g. log_softmax(z) = z - m "
                  "- log(sum exp(z - m)), m = max z: first-step gradients 0.9 to 1.3e-7 "
                  "(relative L2) from the float64 answer on digits-mlp",
        backend="MXNet's CPU build hands float32 log_softmax (last axis, 1 to 4 "
                "dimensions) and its backward to oneDNN's logsoftmax primitives, which "
                "round otherwise: 6.5e-7 to 1.0e-6 from the float64 answer on digits-mlp "
                "(on 32 random float32 logits, the cross-entropy gradient 1.09e-6 from "
                "exact, 4.3e-8 with MXNET_MKLDNN_ENABLED=0)",
        source="src/operator/nn/mkldnn/mkldnn_log_softmax.cc (SupportMKLDNNLogSoftmax, "
               "MKLDNNLogSoftmaxForward/Backward); src/operator/nn/mkldnn/"
               "mkldnn_base-inl.h (MKLDNNEnvSet: MXNET_MKLDNN_ENABLED, on by default)",
        dtypes=("float32",),
        twin_env={"MXNET_MKLDNN_ENABLED": "0"},
    ),
    Entry(
        id="mxnet-dense-layout",
        title="Dense layout: Gluon stores the weight transposed",
        backends=MXNET,
        features=(),
        reference="kernel of shape (fan_in, fan_out)",
        backend="weight of shape (units, in_units)",
        source="python/mxnet/gluon/nn/basic_layers.py (Dense)",
    ),
)
