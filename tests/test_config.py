"""bot/config.py: TOML → frozen config, with errors naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_config, require_faq_dir
from bot.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CONFIG = REPO / "examples" / "sample-shop" / "kefu.toml"
EXAMPLE_CONFIG = REPO / "config.example.toml"
TOKEN = "a-webhook-token-of-32-characters"


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kefu.toml"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> tuple[Path, ConfigError]:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ or {})
    return path, info.value


def assert_points_at(error: ConfigError, path: Path, line: int, key: str) -> None:
    message = str(error)
    assert message.startswith(f"{path}:{line}: key '{key}':"), message
    assert error.path == path
    assert error.line == line
    assert error.key == key


# -- the shipped configs ------------------------------------------------------


def test_sample_shop_config_values():
    config = load_config(SAMPLE_CONFIG, environ={})
    assert config.path == SAMPLE_CONFIG
    assert config.shop.name == "Lantern Lane"
    assert config.shop.default_language == "en"
    assert config.shop.languages == ("en", "zh")
    assert config.retrieval.answer_threshold == 0.5
    assert config.retrieval.suggest_threshold == 0.15
    assert config.retrieval.max_suggestions == 3
    assert config.retrieval.ambiguity_ratio == 0.8
    assert config.retrieval.top_topics == ("order-tracking", "shipping-time", "returns-policy", "refund-timing")
    assert (config.http.host, config.http.port) == ("127.0.0.1", 8080)
    assert config.webhook.enabled is True
    assert config.webhook.auth == "bearer"
    assert config.webhook.secret == "sample-shop-token-change-me"
    assert config.webhook.outgoing is None
    assert config.texts == {}


def test_sample_shop_relative_paths_resolve_against_config_directory():
    config = load_config(SAMPLE_CONFIG, environ={})
    assert config.knowledge.faq_dir == SAMPLE_CONFIG.parent / "faq"
    assert config.knowledge.faq_dir.is_dir()
    assert config.storage.database.resolve() == REPO / "var" / "sample-shop" / "kefu.db"
    assert config.storage.index_dir.resolve() == REPO / "var" / "sample-shop" / "index"


def test_example_config_values():
    config = load_config(EXAMPLE_CONFIG, environ={"KEFU_WEBHOOK_TOKEN": TOKEN})
    assert config.shop.name == "My Shop"
    assert config.shop.languages == ("en", "zh")
    assert config.language.backend == "lingua"
    assert config.language.min_confidence == 0.8
    assert config.pipeline.turn_timeout_seconds == 30.0
    assert config.pipeline.shutdown_grace_seconds == 10.0
    assert config.http.max_body_bytes == 65536
    assert config.http.shutdown_timeout_seconds == 15.0
    assert config.retrieval.top_topics == ()
    assert config.webhook.secret == TOKEN
    assert config.webhook.max_text_chars == 4000
    assert config.webhook.signature_tolerance_seconds == 300
    assert config.webhook.outgoing is None
    assert config.texts == {"en": {}}


def test_example_config_relative_paths_resolve_against_config_directory():
    config = load_config(EXAMPLE_CONFIG, environ={"KEFU_WEBHOOK_TOKEN": TOKEN})
    assert config.storage.database == REPO / "var" / "kefu.db"
    assert config.storage.index_dir == REPO / "var" / "index"
    assert config.knowledge.faq_dir == REPO / "faq"


def test_example_config_without_token_variable_names_token_env(tmp_path):
    with pytest.raises(ConfigError, match=r"environment variable KEFU_WEBHOOK_TOKEN is not set or empty") as info:
        load_config(EXAMPLE_CONFIG, environ={})
    assert info.value.key == "webhook.token_env"
    line = EXAMPLE_CONFIG.read_text(encoding="utf-8").splitlines().index('token_env = "KEFU_WEBHOOK_TOKEN"') + 1
    assert str(info.value).startswith(f"{EXAMPLE_CONFIG}:{line}: key 'webhook.token_env':")


def test_empty_config_uses_defaults(tmp_path):
    config = load_config(write_config(tmp_path, ""), environ={})
    assert config.shop.languages == ("en",)
    assert config.shop.default_language == "en"
    assert config.knowledge.faq_dir == tmp_path / "faq"
    assert config.storage.database == tmp_path / "var" / "kefu.db"
    assert config.webhook.enabled is False
    assert config.webhook.secret == ""
    assert config.retrieval.answer_threshold == 0.5


def test_absolute_path_is_kept(tmp_path):
    target = tmp_path / "elsewhere" / "faq"
    config = load_config(write_config(tmp_path, f'[knowledge]\nfaq_dir = "{target}"\n'), environ={})
    assert config.knowledge.faq_dir == target


def test_texts_table_overrides_are_read(tmp_path):
    config = load_config(write_config(tmp_path, (
        '[shop]\nlanguages = ["en", "zh"]\n'
        '[texts.zh]\nno_match = "没有找到"\n'
    )), environ={})
    assert config.texts == {"zh": {"no_match": "没有找到"}}


def test_outgoing_webhook_with_secret_from_env(tmp_path):
    config = load_config(write_config(tmp_path, (
        "[webhook.outgoing]\n"
        'url = "https://example.com/hook"\n'
        'secret_env = "OUT_SECRET"\n'
        "max_attempts = 3\n"
    )), environ={"OUT_SECRET": "s3cret"})
    outgoing = config.webhook.outgoing
    assert outgoing is not None
    assert outgoing.url == "https://example.com/hook"
    assert outgoing.secret == "s3cret"
    assert outgoing.max_attempts == 3
    assert outgoing.timeout_seconds == 10.0


# -- errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ('[shop]\nname = "x"\ndefualt_language = "en"\n', 3, "shop.defualt_language"),
        ("[retrieval]\nanswer_threshold = 0.6\n\nmax_sugestions = 3\n", 4, "retrieval.max_sugestions"),
        ("[webhook.outgoing]\nurl = \"\"\ntimeout = 5\n", 3, "webhook.outgoing.timeout"),
        ('[shop]\nname = "x"\n\n[shpo]\nname = "y"\n', 4, "shpo"),
    ],
)
def test_error_unknown_key(tmp_path, text, line, key):
    path, error = config_error(tmp_path, text)
    assert_points_at(error, path, line, key)
    assert "unknown key; allowed here:" in str(error)


@pytest.mark.parametrize(
    ("text", "line", "key", "problem"),
    [
        ('[http]\nhost = "0.0.0.0"\nport = "8080"\n', 3, "http.port", "must be an integer, got '8080'"),
        ("[shop]\nname = 42\n", 2, "shop.name", "must be a string, got 42"),
        ("[webhook]\nenabled = \"yes\"\n", 2, "webhook.enabled", "must be true or false, got 'yes'"),
        ("[retrieval]\nanswer_threshold = true\n", 2, "retrieval.answer_threshold", "must be a number, got True"),
        ('[shop]\nlanguages = "en"\n', 2, "shop.languages", "must be a list of strings, got 'en'"),
        ("[shop]\nlanguages = [\"en\", 1]\n", 2, "shop.languages", "must be a list of strings, got ['en', 1]"),
        ('shop = "Lantern"\n', 1, "shop", "must be a table like [shop], got 'Lantern'"),
    ],
)
def test_error_wrong_type(tmp_path, text, line, key, problem):
    path, error = config_error(tmp_path, text)
    assert_points_at(error, path, line, key)
    assert str(error).endswith(problem)


@pytest.mark.parametrize(
    ("text", "line", "key", "problem"),
    [
        ("[http]\nport = 70000\n", 2, "http.port", "70000 is out of range 0..65535"),
        ("[retrieval]\n\nanswer_threshold = 1.5\n", 3, "retrieval.answer_threshold", "1.5 is out of range 0.0..1.0"),
        ("[retrieval]\nmax_suggestions = 0\n", 2, "retrieval.max_suggestions", "0 is out of range 1..10"),
        ("[pipeline]\nturn_timeout_seconds = 0\n", 2, "pipeline.turn_timeout_seconds",
         "0.0 is out of range 0.1..3600.0"),
    ],
)
def test_error_number_out_of_range(tmp_path, text, line, key, problem):
    path, error = config_error(tmp_path, text)
    assert_points_at(error, path, line, key)
    assert str(error).endswith(problem)


def test_error_suggest_threshold_above_answer_threshold(tmp_path):
    path, error = config_error(tmp_path, "[retrieval]\nanswer_threshold = 0.5\nsuggest_threshold = 0.7\n")
    assert_points_at(error, path, 3, "retrieval.suggest_threshold")
    assert str(error).endswith("0.7 must not exceed answer_threshold 0.5")


@pytest.mark.parametrize(("text", "problem"), [
    ('[shop]\nname = "x"\nreply_in = "translate"\n', '"translate" needs a model: set [responder] backend'),
    ('[shop]\nname = "x"\nreply_in = "english"\n', "'english' is not one of: default, translate"),
    ('[shop]\nname = "x"\nreply_in = "translate"\n[responder]\nbackend = "openai"\ndeadline_seconds = 20\n'
     '[responder.openai]\nmodel = "m"\n', "pipeline.turn_timeout_seconds (30) must exceed twice"),
])
def test_error_reply_in(tmp_path, text, problem):
    path, error = config_error(tmp_path, text)
    assert_points_at(error, path, 3, "shop.reply_in")
    assert problem in str(error)


def test_error_default_language_not_in_languages(tmp_path):
    path, error = config_error(tmp_path, '[shop]\ndefault_language = "de"\nlanguages = ["en", "zh"]\n')
    assert_points_at(error, path, 3, "shop.languages")
    assert str(error).endswith("must include shop.default_language 'de'")


@pytest.mark.parametrize(
    ("text", "line", "key", "problem"),
    [
        ('[shop]\ndefault_language = "English"\n', 2, "shop.default_language",
         "'English' is not an ISO 639-1 code such as 'en'"),
        ('[shop]\nlanguages = ["en", "zh-CN"]\n', 2, "shop.languages",
         "'zh-CN' (item 2) is not an ISO 639-1 code such as 'en'"),
    ],
)
def test_error_bad_language_code_in_shop(tmp_path, text, line, key, problem):
    path, error = config_error(tmp_path, text)
    assert_points_at(error, path, line, key)
    assert str(error).endswith(problem)


def test_error_invalid_toml_names_parser_line(tmp_path):
    path, error = config_error(tmp_path, '[shop]\nname = "Lantern Lane"\nlanguages = [en]\n')
    assert "invalid TOML" in str(error)
    assert error.line == 3
    assert str(error).startswith(f"{path}:3: invalid TOML:")


def test_error_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"config file not found") as info:
        load_config(path, environ={})
    assert str(info.value) == f"{path}: config file not found"


def test_error_non_utf8_file(tmp_path):
    path = tmp_path / "kefu.toml"
    path.write_bytes('[shop]\nname = "Caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"config file is not UTF-8") as info:
        load_config(path, environ={})
    assert str(info.value).startswith(f"{path}: config file is not UTF-8")


def test_error_webhook_token_too_short(tmp_path):
    path, error = config_error(tmp_path, '[webhook]\nenabled = true\ntoken = "short-token"\n')
    assert_points_at(error, path, 3, "webhook.token")
    assert str(error).endswith("must be at least 16 characters long")


def test_webhook_token_of_16_characters_is_accepted(tmp_path):
    config = load_config(write_config(tmp_path, '[webhook]\nenabled = true\ntoken = "0123456789abcdef"\n'), environ={})
    assert config.webhook.secret == "0123456789abcdef"


def test_error_webhook_enabled_without_token(tmp_path):
    path, error = config_error(tmp_path, "[webhook]\nenabled = true\n")
    assert_points_at(error, path, 1, "webhook.token")
    assert "is required: set 'token_env'" in str(error)


@pytest.mark.parametrize("environ", [{}, {"KEFU_TOKEN": ""}])
def test_error_token_env_names_unset_variable(tmp_path, environ):
    path, error = config_error(tmp_path, '[webhook]\nenabled = true\n\ntoken_env = "KEFU_TOKEN"\n', environ)
    assert_points_at(error, path, 4, "webhook.token_env")
    assert str(error).endswith("environment variable KEFU_TOKEN is not set or empty")


def test_token_env_reads_environ(tmp_path):
    path = write_config(tmp_path, '[webhook]\nenabled = true\ntoken_env = "KEFU_TOKEN"\n')
    assert load_config(path, environ={"KEFU_TOKEN": TOKEN}).webhook.secret == TOKEN


def test_error_both_token_and_token_env(tmp_path):
    path, error = config_error(
        tmp_path, f'[webhook]\nenabled = true\ntoken = "{TOKEN}"\ntoken_env = "KEFU_TOKEN"\n', {"KEFU_TOKEN": TOKEN}
    )
    assert_points_at(error, path, 4, "webhook.token_env")
    assert str(error).endswith("set either 'token' or 'token_env', not both")


@pytest.mark.parametrize("url", ["example.com/hook", "ftp://example.com/hook", "HTTPS//example.com"])
def test_error_outgoing_url_without_http_scheme(tmp_path, url):
    path, error = config_error(tmp_path, f'[webhook]\n\n[webhook.outgoing]\nurl = "{url}"\nsecret = "x"\n')
    assert_points_at(error, path, 4, "webhook.outgoing.url")
    assert str(error).endswith(f"'{url}' must start with http:// or https://")


def test_error_outgoing_url_without_secret(tmp_path):
    path, error = config_error(tmp_path, '[webhook.outgoing]\nurl = "https://example.com/hook"\n')
    assert_points_at(error, path, 1, "webhook.outgoing.secret")


@pytest.mark.parametrize(("table", "code"), [("texts.EN", "EN"), ('texts."en-US"', "en-US"), ("texts.english", "english")])
def test_error_bad_language_code_in_texts_table(tmp_path, table, code):
    path, error = config_error(tmp_path, f'[shop]\nname = "x"\n\n[{table}]\nno_match = "Nothing"\n')
    assert_points_at(error, path, 4, f"texts.{code}")
    assert str(error).endswith("texts are keyed by ISO 639-1 language code, e.g. [texts.en]")


def test_error_message_names_value_and_key_for_merchants(tmp_path):
    path, error = config_error(tmp_path, '[language]\nbackend = "fasttext"\n')
    assert str(error) == f"{path}:2: key 'language.backend': 'fasttext' is not one of: lingua, langdetect"


# -- sentiment and handoff ---------------------------------------------------------


def test_handoff_and_sentiment_defaults(tmp_path):
    config = load_config(write_config(tmp_path, ""), environ={})
    assert config.handoff.enabled and config.handoff.mood_threshold == -0.5
    assert config.handoff.unconfident_turns == 3 and config.handoff.commands == ("/human", "/agent")
    assert config.handoff.business_hours is None and config.handoff.notify is None
    assert config.sentiment.backend == "default" and config.sentiment.apology_below == -0.3
    assert config.webhook.agent_token == ""


def test_business_hours_and_notify_are_read(tmp_path):
    config = load_config(write_config(tmp_path, """
[handoff]
keywords = ["lawyer"]
[handoff.business_hours]
timezone = "Asia/Shanghai"
days = ["mon", "Tue", "sat"]
open = "08:30"
close = "20:00"
[handoff.notify]
url = "https://helpdesk.example/hooks/kefu"
secret_env = "NOTIFY"
"""), environ={"NOTIFY": "s3cret"})
    hours = config.handoff.business_hours
    assert (hours.timezone, hours.days, hours.opens, hours.closes) == ("Asia/Shanghai", (0, 1, 5), "08:30", "20:00")
    assert config.handoff.notify.secret == "s3cret" and config.handoff.keywords == ("lawyer",)


@pytest.mark.parametrize(("text", "line", "key", "problem"), [
    ('[handoff.business_hours]\ntimezone = "Mars/Olympus"\n', 2, "handoff.business_hours.timezone",
     "is not a time zone name"),
    ('[handoff.business_hours]\ndays = ["monday"]\n', 2, "handoff.business_hours.days", "is not one of: mon"),
    ('[handoff.business_hours]\nopen = "9am"\n', 2, "handoff.business_hours.open", "24-hour time"),
    ('[handoff.business_hours]\nopen = "18:00"\nclose = "09:00"\n', 3, "handoff.business_hours.close",
     "must be later than open"),
    ('[handoff]\ncommands = ["human"]\n', 2, "handoff.commands", "must look like /human"),
    ('[handoff]\nmood_threshold = -2\n', 2, "handoff.mood_threshold", "out of range"),
    ('[handoff.notify]\nurl = "ftp://x"\n', 2, "handoff.notify.url", "must start with http"),
    ('[sentiment]\nbackend = "vibes"\n', 2, "sentiment.backend", "is not one of: default"),
    ('[sentiment]\nbackend = "transformers"\n', 1, "sentiment.transformers_model", "is required"),
])
def test_error_bad_handoff_or_sentiment_value(tmp_path, text, line, key, problem):
    path, error = config_error(tmp_path, text)
    assert_points_at(error, path, line, key)
    assert problem in str(error)


def test_error_agent_token_must_differ_from_the_shops(tmp_path):
    path, error = config_error(tmp_path, f'[webhook]\nenabled = true\ntoken = "{TOKEN}"\nagent_token = "{TOKEN}"\n')
    assert_points_at(error, path, 4, "webhook.agent_token")
    assert "must differ" in str(error)


# -- the FAQ folder -----------------------------------------------------------------


def test_missing_faq_folder_names_config_file_line_and_key(tmp_path):
    path = write_config(tmp_path, '[shop]\nname = "S"\n\n[knowledge]\nfaq_dir = "no-such-folder"\n')
    config = load_config(path, environ={})  # commands that need no FAQ (privacy, eval language) still load it
    with pytest.raises(ConfigError) as info:
        require_faq_dir(config)
    assert_points_at(info.value, path, 5, "knowledge.faq_dir")
    assert str(info.value).endswith(f"the FAQ folder {tmp_path / 'no-such-folder'} does not exist; create it or "
                                    "point faq_dir at your FAQ files")


def test_absent_faq_dir_key_with_no_default_folder_names_the_key_and_its_table(tmp_path):
    path = write_config(tmp_path, '[shop]\nname = "S"\n[knowledge]\n')
    with pytest.raises(ConfigError) as info:
        require_faq_dir(load_config(path, environ={}))
    assert_points_at(info.value, path, 3, "knowledge.faq_dir")
    assert "is not set, and the default FAQ folder" in str(info.value)
    assert 'add faq_dir = "…" under [knowledge]' in str(info.value)


def test_absent_knowledge_table_with_no_default_folder_names_the_key_without_a_line(tmp_path):
    path = write_config(tmp_path, '[shop]\nname = "S"\n')
    with pytest.raises(ConfigError) as info:
        require_faq_dir(load_config(path, environ={}))
    assert (info.value.path, info.value.line, info.value.key) == (path, None, "knowledge.faq_dir")
    assert str(info.value).startswith(f"{path}: key 'knowledge.faq_dir': is not set")


def test_faq_dir_that_is_a_file_is_named(tmp_path):
    (tmp_path / "faq.yaml").write_text("- id: a\n", encoding="utf-8")
    path = write_config(tmp_path, '[knowledge]\nfaq_dir = "faq.yaml"\n')
    with pytest.raises(ConfigError, match=r"faq\.yaml is a file, not a folder of FAQ files") as info:
        require_faq_dir(load_config(path, environ={}))
    assert_points_at(info.value, path, 2, "knowledge.faq_dir")


def test_existing_faq_folder_is_returned(tmp_path):
    (tmp_path / "faq").mkdir()
    assert require_faq_dir(load_config(write_config(tmp_path, ""), environ={})) == tmp_path / "faq"
