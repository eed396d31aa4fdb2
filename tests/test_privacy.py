import pytest

from cinefm.privacy import ENV_VAR, PrivacyError, load_key, pseudonymize


def test_pseudonyms_are_keyed_deterministic_and_prefixed():
    a = pseudonymize("MRN001234", b"k" * 32, "patient")
    assert a == pseudonymize("MRN001234", b"k" * 32, "patient")
    assert a.startswith("P") and len(a) == 13
    assert a != pseudonymize("MRN001234", b"j" * 32, "patient")
    assert pseudonymize("MRN001234", b"k" * 32, "study").startswith("S")
    assert "001234" not in a


def test_real_data_without_key_stops_with_instructions(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(PrivacyError, match=ENV_VAR):
        load_key(None)
    assert load_key(None, phantom=True)


def test_key_from_env_wins_and_key_file_is_read(monkeypatch, tmp_path):
    f = tmp_path / "key"
    f.write_text("0123456789abcdef0123\n")
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert load_key(f) == b"0123456789abcdef0123"
    monkeypatch.setenv(ENV_VAR, "from-the-environment")
    assert load_key(f) == b"from-the-environment"


def test_short_or_missing_key_file_is_refused(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(PrivacyError, match="not found"):
        load_key(tmp_path / "absent")
    short = tmp_path / "short"
    short.write_text("abc")
    with pytest.raises(PrivacyError, match="16"):
        load_key(short)
