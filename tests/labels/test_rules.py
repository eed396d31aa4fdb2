import pytest

from cinefm.labels.rules import RuleLabeler, TypoCorrector


@pytest.fixture(scope="module")
def rules(vocab):
    return RuleLabeler(vocab)


def _value(rules, text, disease):
    return rules.label_text(text)[disease].value


@pytest.mark.parametrize("text, disease, expected", [
    # negation before the mention, within the sentence
    ("No evidence of hypertrophic cardiomyopathy.", "hcm", 0),
    ("No features of HCM.", "hcm", 0),
    ("No LGE to suggest previous myocardial infarction.", "prior_mi", 0),
    ("No features to suggest an infiltrative cardiomyopathy such as amyloidosis.", "amyloidosis", 0),
    ("There is no pericardial effusion.", "pericardial_effusion", 0),
    # negation after the mention or inside it
    ("Pericardial effusion: none.", "pericardial_effusion", 0),
    ("Amyloidosis is excluded.", "amyloidosis", 0),
    ("The right ventricle is not dilated.", "rv_dilation", 0),
    ("Non-dilated RV.", "rv_dilation", 0),
    # uncertainty (hedges) -> unknown
    ("HCM cannot be excluded.", "hcm", None),
    ("Amyloid can not be excluded.", "amyloidosis", None),
    ("Possible early dilated cardiomyopathy; clinical correlation is recommended.", "dcm", None),
    ("Mild LV dilatation, ?DCM.", "dcm", None),
    ("The LGE pattern raises the possibility of cardiac amyloidosis.", "amyloidosis", None),
    ("Questionable subendocardial LGE, possible old MI.", "prior_mi", None),
    ("Possible small pericardial effusion versus epicardial fat.", "pericardial_effusion", None),
    # affirmed
    ("Findings are in keeping with HCM.", "hcm", 1),
    ("Appearances are in keeping with a non-ischaemic dilated cardiomyopathy.", "dcm", 1),
    ("The RV is dilated (RVEDV 220 ml) with RVEF 40%.", "rv_dilation", 1),
    ("Pericardial effusion (6 mm) without features of tamponade.", "pericardial_effusion", 1),
    # pseudo-negation, termination, scope, other subjects, abbreviations
    ("No change in the known pericardial effusion.", "pericardial_effusion", 1),
    ("No LV hypertrophy but hypertrophic cardiomyopathy of the apex.", "hcm", 1),
    ("No pericardial effusion. Dilated cardiomyopathy.", "dcm", 1),
    ("Family history of hypertrophic cardiomyopathy.", "hcm", 0),
    ("Referred to rule out amyloidosis.", "amyloidosis", 0),
    ("Small pleural effusion.", "pericardial_effusion", 0),
    ("Mild MI.", "prior_mi", 1),
    ("mild mi", "prior_mi", 0),  # abbreviations are case-sensitive
    ("Cardiac amyloidosis. No evidence of HCM.", "amyloidosis", 1),
    # typos one edit away
    ("Hypertrohpic cardiomyopahty.", "hcm", 1),
    ("Possibel amyloidsois.", "amyloidosis", None),
])
def test_sentence_level_labels(rules, text, disease, expected):
    assert _value(rules, text, disease) == expected


def test_study_level_positive_beats_hedge_beats_negation(rules):
    assert _value(rules, "Possible HCM. Impression: HCM.", "hcm") == 1
    assert _value(rules, "No HCM. HCM cannot be excluded.", "hcm") is None
    assert _value(rules, "No HCM. No features of HCM.", "hcm") == 0


def test_unknown_labels_carry_the_hedge_as_reason(rules):
    answer = rules.label_text("Cardiac amyloidosis cannot be excluded.")["amyloidosis"]
    assert answer.value is None and "cannot be excluded" in answer.reason


def test_negation_scope_ends_after_the_configured_window(vocab):
    from dataclasses import replace

    narrow = RuleLabeler(replace(vocab, scope_words=2))
    text = "No sign of any clinically relevant pericardial effusion."
    assert _value(RuleLabeler(vocab), text, "pericardial_effusion") == 0
    assert _value(narrow, text, "pericardial_effusion") == 1


def test_typo_corrector_fixes_one_edit_and_leaves_ambiguous_or_known_words():
    fix = TypoCorrector({"dilated", "effusion", "infarct", "infract", "septal", "septum"}, min_length=6)
    assert fix("Dilaetd RV, small efusion, EFFUSOIN.") == "Dilated RV, small effusion, EFFUSION."
    assert fix("infarct infract") == "infarct infract"  # known words stay
    assert fix("septam") == "septam"  # one edit from two known words: ambiguous
    assert TypoCorrector({"dilated"}, min_length=0)("dilaetd") == "dilaetd"


def test_typo_corrector_leaves_inflections_and_kept_words():
    fix = TypoCorrector({"increase", "ventricle", "ischaemic", "father", "cardiomyopathy"}, min_length=6,
                        keep=["rather"])
    assert fix("Increased ventricles, ischaemia") == "Increased ventricles, ischaemia"  # other words of a stem
    assert fix("rather than") == "rather than"  # an English word, kept
    assert fix("cardiomyopathu fahter") == "cardiomyopathy father"  # last-letter and other typos still fixed


def test_a_contrast_word_is_not_read_as_a_cue_by_the_typo_corrector(vocab):
    labeler = RuleLabeler(vocab)
    # "rather" one edit from the family-history cue "father"; "though" from "thought"
    sentences = [s for _, _, s, _ in labeler.mentions("Dilated cardiomyopathy, rather than ischaemic.")]
    assert sentences == ["Dilated cardiomyopathy, rather than ischaemic."]
    assert _value(labeler, "Probably physiological fluid, though a small pericardial effusion is possible.",
                  "pericardial_effusion") is None
