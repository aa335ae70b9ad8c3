"""Bad specs, one row each: the error's line, column and a message fragment
naming the problem (LANGUAGE.md: errors point at the offending token)."""
from __future__ import annotations

import pytest

from dslc import api
from dslc.errors import SpecError

M = "model m {{\n    input x: f32[B, 64]\n    input y: i64[B]\n{body}\n}}\n"   # body starts at line 4


def model(*lines: str) -> str:
    return M.format(body="\n".join("    " + l for l in lines))


def trained(*settings: str) -> str:
    return model("loss = mean(x)", "metric acc = accuracy(x, y)") + "train m {\n" + \
        "\n".join("    " + s for s in settings) + "\n}\n"        # settings start at line 8


CASES = [
    # -- syntax
    ("syntax_missing_operand", model("h = x +"), 4, 12, "expected an expression"),
    ("syntax_stray_char", model("h = x $ 2"), 4, 11, "unexpected character `$`"),
    ("syntax_unterminated_block", "model m {\n    input x: f32[B, 4]\n", 1, 9, "expected `}` to close"),
    ("syntax_unclosed_paren", model("h = relu(x", "g = x"), 4, 13, "never closed"),
    ("syntax_bad_statement", model("input = 3"), 4, 11, "expected a name"),
    # -- names
    ("unknown_name", model("h = relu(xx)"), 4, 14, "unknown name `xx` (did you mean `x`?)"),
    ("unknown_function", model("h = rellu(x)"), 4, 9, "did you mean `relu`?"),
    ("rebinding", model("h = relu(x)", "h = tanh(x)"), 5, 5, "`h` is already bound at line 4"),
    ("rebinding_input", model("x = relu(x)"), 4, 5, "`x` is already bound at line 2"),
    ("unknown_dtype", model("input z: f23[B]"), 4, 14, "unknown dtype `f23`"),
    ("const_twice", "const H = 3\nconst H = 4\n", 2, 1, "`H` is already defined at line 1"),
    # -- shapes
    ("matmul_mismatch", model("param V: [128, 10] ~ zeros", "h = x @ V"), 5, 11,
     "cannot multiply f32[B, 64] by f32[128, 10]: 64 != 128"),
    ("broadcast_mismatch", model("param V: [10] ~ zeros", "h = x + V"), 5, 11, "[B, 64] and [10]"),
    ("conv_wrong_rank", model("h = conv2d(x, 4, 3)"), 4, 9, "expects [B, c, h, w], found f32[B, 64]"),
    ("pattern_mismatch", "layer f(h: [B, m], c: [B, m]) {\n    return h + c\n}\n"
     + model("input z: f32[B, 3]", "h = f(x, z)"), 8, 9, "argument `c` of `f` expects [B, m], found f32[B, 3]"),
    ("index_out_of_range", model("h = x[:, 70]"), 4, 9, "out of range"),
    ("symbolic_dim_as_number", model("h = x * B"), 4, 13, "the dim B is not known"),
    # -- layers and calls
    ("layer_arity", model("h = dense(x, 3, relu, 5)"), 4, 9, "`dense` takes 3 arguments, found 4"),
    ("layer_keyword", model("h = dense(x, 3, actt = relu)"), 4, 9, "no argument `actt` (did you mean `act`?)"),
    ("layer_missing_arg", model("h = dense(x)"), 4, 9, "`dense` needs argument `m`"),
    ("int_arg_type", model("h = dense(x, 2.5)"), 4, 9, "argument `m` of `dense` must be an integer"),
    ("unpack_count", model("a, b = dense(x, 3)"), 4, 5, "cannot unpack 1 value into 2 names"),
    ("recursive_layer", "layer f(x) {\n    return f(x)\n}\n" + model("h = f(x)"), 2, 12, "calls itself"),
    ("param_path_missing", model("h = dense(x, 3)", "w = h.V"), 5, 9, "no param `h.V`"),
    ("return_in_model", model("return x"), 4, 5, "`return` is only allowed in a layer"),
    ("input_in_layer", "layer f(x) {\n    input z: f32[B]\n    return x\n}\n" + model("h = f(x)"),
     2, 5, "only allowed in a model"),
    # -- losses, grad
    ("float_labels", model("input t: f32[B]", "loss = cross_entropy(dense(x, 3), t)"), 5, 12, "i64"),
    ("non_scalar_loss", model("loss = sum(x, axis = 1)"), 4, 12, "loss must be a scalar, found f32[B]"),
    ("grad_of_non_scalar", model("g = grad(x * 2, x)"), 4, 9, "grad needs a scalar function, found f32[B, 64]"),
    ("wrt_missing_group", model("h = dense(x, 2)", "loss = mean(h) wrt hh"), 5, 24,
     "no instance or param named `hh` (did you mean `h`?)"),
    ("loss_twice", model("loss = mean(x)", "loss = sum(x)"), 5, 5, "already a result"),
    # -- params and state
    ("unknown_initializer", model("param W: [4] ~ glorot_unifrom"), 4, 20, "did you mean `glorot_uniform`?"),
    ("initializer_arity", model("param W: [4] ~ normal(1, 2)"), 4, 20, "takes 0 to 1 argument"),
    ("unknown_dim_in_param", model("param W: [K, 4] ~ zeros"), 4, 15, "unknown name `K`"),
    ("update_not_a_state", model("update x = x"), 4, 5, "`x` is not a state declared here"),
    ("update_wrong_type", model("state s: [3] ~ zeros", "update s = x"), 5, 16,
     "new value of state `s` is f32[B, 64], but the state is f32[3]"),
    # -- train blocks
    ("train_unknown_model", model("loss = mean(x)") + "train mm {\n    batch = 3\n}\n", 6, 1,
     "no model named `mm` (did you mean `m`?)"),
    ("unknown_setting", trained("optimizer = sgd(lr = 0.1)", "momentun = 0.9"), 9, 5,
     "unknown setting `momentun` (did you mean `momentum`?)"),
    ("unknown_setting_plain", trained("epocs = 3"), 8, 5, "unknown setting `epocs` (did you mean `epochs`?)"),
    ("unknown_optimizer", trained("optimizer = adamw(lr = 0.1)"), 8, 17, "unknown optimizer `adamw` (did you mean `adam`?)"),
    ("unknown_optimizer_arg", trained("optimizer = sgd(lr = 0.1, momentun = 0.9)"), 8, 31,
     "unknown argument `momentun` of optimizer sgd (did you mean `momentum`?)"),
    ("sgd_needs_lr", trained("optimizer = sgd(momentum = 0.9)"), 8, 17, "needs `lr`"),
    ("steps_missing_loss", trained("steps = [loss, g_loss]"), 8, 20, "`g_loss` in steps is not a loss"),
    ("batch_not_positive", trained("batch = 0"), 8, 13, "positive integer"),
    ("split_out_of_range", trained("split = 1.5"), 8, 13, "a fraction between 0 and 1"),
    ("early_stopping_metric", trained("early_stopping = patience(3, val_acc2)"), 8, 34,
     "not a metric or loss of model `m`"),
    ("lr_scale_missing_group", trained("lr_scale = {D: 2.0}"), 8, 17, "no instance or param named `D`"),
    ("schedule_unknown", trained("schedule = cosin(100)"), 8, 16, "did you mean `cosine`?"),
    ("setting_twice", trained("batch = 3", "batch = 4"), 9, 5, "given twice"),
]


@pytest.mark.parametrize("name,text,line,col,fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_spec(name, text, line, col, fragment):
    with pytest.raises(SpecError) as info:
        api.parse(text, filename="bad.dl")
    e = info.value
    assert fragment in e.message, e.format()
    assert (e.line, e.column) == (line, col), e.format()
    assert e.filename == "bad.dl"


def test_there_are_enough_cases():
    assert len(CASES) >= 30
