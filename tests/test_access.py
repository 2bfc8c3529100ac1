"""Operator token: who may launch, cancel and delete; the page obeys it."""
import hmac

import pytest

from bigmodels.base.access import ENV_TOKEN, AccessPolicy, load_policy
from tests.conftest import REPO


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_no_token_anywhere_means_open(tmp_path):
    policy = load_policy({}, [tmp_path / "missing.toml"])
    assert policy.open and policy.allows(None) and policy.allows("anything")


def test_an_empty_environment_variable_is_not_a_token(tmp_path):
    assert load_policy({ENV_TOKEN: "  "}, []).open


def test_the_environment_token_is_required(tmp_path):
    policy = load_policy({ENV_TOKEN: "s3cret"}, [])
    assert not policy.open and policy.source == "environment"
    assert policy.allows("s3cret")
    for wrong in (None, "", "s3cre", "s3cret ", "S3CRET", "s3cretX"):
        assert not policy.allows(wrong)


def test_the_secrets_file_token_and_precedence(tmp_path):
    user = write(tmp_path / "user" / "secrets.toml", 'operator_token = "from-user"\n')
    project = write(tmp_path / "project" / "secrets.toml", 'other = 1\noperator_token = "from-project"\n')
    assert load_policy({}, [user]).allows("from-user")
    both = load_policy({}, [user, project])
    assert both.allows("from-project") and not both.allows("from-user")  # the project's file wins
    assert load_policy({ENV_TOKEN: "env"}, [user, project]).allows("env")  # the environment wins
    unrelated = write(tmp_path / "u2" / "secrets.toml", 'api_key = "x"\n')
    assert load_policy({}, [unrelated]).open


@pytest.mark.parametrize("content", ['operator_token = "unterminated\n', "operator_token = 42\n",
                                     'operator_token = ""\n'])
def test_a_broken_secrets_file_locks_everything(tmp_path, content):
    path = write(tmp_path / "secrets.toml", content)
    policy = load_policy({}, [path])
    assert not policy.open and policy.problem and str(path) in policy.problem
    assert not policy.allows(None) and not policy.allows("42") and not policy.allows("")
    assert "unterminated" not in policy.problem  # names the file, never its content


def test_comparison_is_constant_time_and_the_token_is_never_printed(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    policy = AccessPolicy("tøken", "environment")
    assert policy.allows("tøken") and not policy.allows("token")
    assert calls == [("tøken".encode(), "tøken".encode()), (b"token", "tøken".encode())]
    assert "tøken" not in repr(policy) and "tøken" not in str(policy)


# ---------------------------------------------------------------- the page
def launcher(monkeypatch, tmp_path, token=None):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("BIGMODELS_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # no project secrets file here
    monkeypatch.setenv("HOME", str(tmp_path))  # nor a user one
    if token:
        monkeypatch.setenv(ENV_TOKEN, token)
    else:
        monkeypatch.delenv(ENV_TOKEN, raising=False)
    return AppTest.from_file(str(REPO / "pages" / "launcher.py"), default_timeout=60)


def launch_button(at):
    return next(b for b in at.button if b.label == "Launch run")


def test_the_page_says_when_access_is_open(monkeypatch, tmp_path):
    at = launcher(monkeypatch, tmp_path).run()
    assert not at.exception
    assert any("Open access: anyone who can reach this page may" in c.value for c in at.caption)
    assert not launch_button(at).disabled
    assert not any(ti.label == "Operator token" for ti in at.text_input)


def test_with_a_token_visitors_watch_and_operators_launch(monkeypatch, tmp_path):
    at = launcher(monkeypatch, tmp_path, token="op-token-123").run()
    assert not at.exception
    assert launch_button(at).disabled
    assert any("Watch-only" in w.value for w in at.warning)
    token_box = next(ti for ti in at.text_input if ti.label == "Operator token")

    token_box.set_value("wrong").run()
    assert launch_button(at).disabled and any("not the operator token" in e.value for e in at.error)

    next(ti for ti in at.text_input if ti.label == "Operator token").set_value("op-token-123").run()
    assert not at.exception and not launch_button(at).disabled
    assert any("Operator:" in s.value for s in at.success)
    page_text = " ".join(str(e.value) for e in [*at.markdown, *at.caption, *at.info, *at.success, *at.error])
    assert "op-token-123" not in page_text


# --------------------------------------------------- forged form values
@pytest.mark.parametrize("label,forged", [("Learning rate", float("nan")), ("Learning rate", float("inf")),
                                          ("Epochs", 2**62), ("Processes", 2**62), ("Batch size", -2**62)])
def test_forged_non_finite_or_huge_values_are_refused_not_replaced(monkeypatch, tmp_path, label, forged):
    """A browser cannot send these (its number box stops at JavaScript's safe integers
    and takes no NaN); a forged message can, and Streamlit answers them with the
    widget's default. The form must refuse them, as any out-of-range value, not
    queue the recipe's value in their place."""
    from bigmodels.runs.store import RunStore

    at = launcher(monkeypatch, tmp_path).run()
    box = next(n for n in at.number_input if n.label == label)
    box.set_value(forged)  # the widget state a forged BackMsg carries (double_value / int_value)
    launch_button(at).click().run()
    assert not at.exception
    assert any("Nothing was queued" in e.value and label in e.value for e in at.error), [e.value for e in at.error]
    assert RunStore(tmp_path / "home").list_runs() == []


def test_the_form_still_queues_what_it_shows(monkeypatch, tmp_path):
    """The control for the test above: the boxes start at the recipe's values (held in
    the session state now) and an honest click queues exactly those."""
    import bigmodels.app.launcher as lui
    from bigmodels.runs.store import RunStore

    monkeypatch.setattr(lui, "ensure_dispatcher", lambda store: "running")  # nothing to train here
    at = launcher(monkeypatch, tmp_path).run()
    shown = {n.label: n.value for n in at.number_input}
    next(n for n in at.number_input if n.label == "Epochs").set_value(3)
    launch_button(at).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (run,) = RunStore(tmp_path / "home").list_runs()
    assert run.config["epochs"] == 3 and run.config["lr"] == shown["Learning rate"] and run.world_size == 1
