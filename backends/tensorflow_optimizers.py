"""The TensorFlow backend's optimizers: each wraps TensorFlow's native training kernels
(tensorflow/core/kernels/training_ops.cc, ``tf.raw_ops.ResourceApply*``); built eagerly
(slots and hyperparameter tensors), ``apply()`` runs inside the step's tf.function.
Slots start at zero unless the algorithm says otherwise. Every class takes the imported
``tf`` module first: TensorFlow is imported by the backend's ``load`` only.
"""

from __future__ import annotations


class _Optimizer:
    """The model's variables, its slots (tf.Variables) and hyperparameter tensors; ``p`` is
    the spec's optimizer params (every one of them is passed on to a kernel)."""

    def __init__(self, tf, variables: list, p: dict, dtype):
        self.tf, self.variables, self.dtype = tf, variables, dtype

    def const(self, value: float):
        """A hyperparameter as a scalar tensor of the run's dtype (exact in float64)."""
        return self.tf.constant(value, self.dtype)

    def slots(self, fill: float = 0.0) -> list:
        tf = self.tf
        return [tf.Variable(tf.fill(tf.shape(v), self.const(fill)), trainable=False)
                for v in self.variables]

    def apply(self, grads: list) -> None:
        raise NotImplementedError


class _SGD(_Optimizer):
    """accum = mu*accum + g; p -= lr*accum (nesterov: p -= lr*g + lr*mu*accum): torch's form.

    Without momentum (nesterov or not) a plain p -= lr*g, as Keras does.
    """

    def __init__(self, tf, variables, p, dtype):
        super().__init__(tf, variables, p, dtype)
        self.lr = self.const(p["learning_rate"])
        self.momentum = self.const(p["momentum"]) if p["momentum"] > 0 else None
        self.nesterov = bool(p["nesterov"])
        self.accums = self.slots() if self.momentum is not None else []

    def apply(self, grads):
        raw = self.tf.raw_ops
        if self.momentum is None:
            for v, g in zip(self.variables, grads, strict=True):
                raw.ResourceApplyGradientDescent(var=v.handle, alpha=self.lr, delta=g,
                                                 use_locking=False)
            return
        for v, a, g in zip(self.variables, self.accums, grads, strict=True):
            raw.ResourceApplyMomentum(var=v.handle, accum=a.handle, lr=self.lr, grad=g,
                                      momentum=self.momentum, use_locking=False,
                                      use_nesterov=self.nesterov)


class _Adam(_Optimizer):
    """TensorFlow's Adam kernels: epsilon hat, lr_t = lr*sqrt(1-b2^t)/(1-b1^t),
    p -= lr_t*m/(sqrt(v) + eps) (ledger: tensorflow-adam-epsilon); amsgrad uses max(v)."""

    def __init__(self, tf, variables, p, dtype):
        super().__init__(tf, variables, p, dtype)
        self.lr, self.beta_1, self.beta_2, self.epsilon = (
            self.const(p[k]) for k in ("learning_rate", "beta_1", "beta_2", "epsilon"))
        self.amsgrad = bool(p["amsgrad"])
        self.m, self.v = self.slots(), self.slots()
        self.vhat = self.slots() if self.amsgrad else []
        self.t = tf.Variable(self.const(0.0), trainable=False)  # steps taken, run dtype

    def apply(self, grads):
        raw = self.tf.raw_ops
        t = self.t.assign_add(self.const(1.0))
        b1_power, b2_power = self.tf.pow(self.beta_1, t), self.tf.pow(self.beta_2, t)
        hyper = dict(beta1_power=b1_power, beta2_power=b2_power, lr=self.lr, beta1=self.beta_1,
                     beta2=self.beta_2, epsilon=self.epsilon, use_locking=False)
        for i, (v, g) in enumerate(zip(self.variables, grads, strict=True)):
            self.decay(v)
            if self.amsgrad:
                raw.ResourceApplyAdamWithAmsgrad(var=v.handle, m=self.m[i].handle,
                                                 v=self.v[i].handle, vhat=self.vhat[i].handle,
                                                 grad=g, **hyper)
            else:
                raw.ResourceApplyAdam(var=v.handle, m=self.m[i].handle, v=self.v[i].handle,
                                      grad=g, use_nesterov=False, **hyper)

    def decay(self, v) -> None:
        """No weight decay in Adam."""


class _AdamW(_Adam):
    """p -= lr*wd*p on the parameter before the step (Loshchilov & Hutter; torch), then Adam.

    TensorFlow has no training kernel with decoupled weight decay (ResourceApplyAdam has no
    weight-decay input), and adding wd*p to the gradient would be L2, not AdamW: so the
    decay is its own native op on the variable, right before that variable's Adam kernel.
    """

    def __init__(self, tf, variables, p, dtype):
        super().__init__(tf, variables, p, dtype)
        self.lr_wd = self.lr * self.const(p["weight_decay"])

    def decay(self, v) -> None:
        v.assign_sub(self.lr_wd * v)


class _RMSprop(_Optimizer):
    """ms = rho*ms + (1-rho)*g^2; mom = momentum*mom + lr*g/sqrt(ms + eps); p -= mom
    (centered: ms - mg^2 under the root). Ledger: tensorflow-rmsprop-epsilon."""

    def __init__(self, tf, variables, p, dtype):
        super().__init__(tf, variables, p, dtype)
        self.lr, self.rho, self.momentum, self.epsilon = (
            self.const(p[k]) for k in ("learning_rate", "rho", "momentum", "epsilon"))
        self.centered = bool(p["centered"])
        self.ms, self.mom = self.slots(), self.slots()
        self.mg = self.slots() if self.centered else []

    def apply(self, grads):
        raw = self.tf.raw_ops
        hyper = dict(lr=self.lr, rho=self.rho, momentum=self.momentum, epsilon=self.epsilon,
                     use_locking=False)
        for i, (v, g) in enumerate(zip(self.variables, grads, strict=True)):
            if self.centered:
                raw.ResourceApplyCenteredRMSProp(var=v.handle, mg=self.mg[i].handle,
                                                 ms=self.ms[i].handle, mom=self.mom[i].handle,
                                                 grad=g, **hyper)
            else:
                raw.ResourceApplyRMSProp(var=v.handle, ms=self.ms[i].handle,
                                         mom=self.mom[i].handle, grad=g, **hyper)


class _Adagrad(_Optimizer):
    """accum = initial + sum of g^2; p -= lr*g/(sqrt(accum) + eps): the published form."""

    def __init__(self, tf, variables, p, dtype):
        super().__init__(tf, variables, p, dtype)
        self.lr, self.epsilon = self.const(p["learning_rate"]), self.const(p["epsilon"])
        self.accums = self.slots(fill=p["initial_accumulator_value"])

    def apply(self, grads):
        for v, a, g in zip(self.variables, self.accums, grads, strict=True):
            self.tf.raw_ops.ResourceApplyAdagradV2(var=v.handle, accum=a.handle, lr=self.lr,
                                                   epsilon=self.epsilon, grad=g,
                                                   use_locking=False, update_slots=True)


OPTIMIZERS: dict[str, type[_Optimizer]] = {
    "sgd": _SGD,
    "adam": _Adam,
    "adamw": _AdamW,
    "rmsprop": _RMSprop,
    "adagrad": _Adagrad,
}
