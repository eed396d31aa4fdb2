import pytest

from cinefm.labels.lvef import parse_lvef


@pytest.mark.parametrize("text, expected", [
    ("LVEF 55%", 55.0),
    ("EF of 35 %", 35.0),
    ("ejection fraction: 42%", 42.0),
    ("LV ejection fraction is preserved at 62 %.", 62.0),
    ("LVEF (biplane): 47.5 %", 47.5),
    ("LV EF = 61%", 61.0),
    ("ejection fraction of 55 percent", 55.0),
    ("The left ventricular ejection fraction is 44%.", 44.0),
    ("LVEF 50-55%", 52.5),
    ("LV ejectoin fraction 71%", 71.0),
    ("EF 0.55", 55.0),
    ("LVEDV 180 ml, LVESV 90 ml, LVEF: 33%, LV mass 120 g.", 33.0),
    ("RVEF 45%, LVEF 30%", 30.0),
    ("RV ejection fraction 45 %. Left ventricular ejection fraction 28%.", 28.0),
    ("LVEF 35 % (previously 50 %)", 35.0),
    ("Indication: heart failure, LVEF 30% on echo.\nFindings: LVEF 31%.", 31.0),
    ("Evaluation (previous EF 40% on echo). LV: normal size, EF 55%.", 55.0),
    ("Prior LVEF 45%, now LVEF 50%.", 50.0),
    ("Referred with LVEF 30% on echo.", 30.0),  # the only value stated
    ("LVEF could not be calculated. LVEDV 150 ml", None),
    ("RVEF 52%.", None),
    ("Maximal wall thickness 19 mm.", None),
    ("", None),
    # "effusion" is no "EF"; a number is not cut out of a decimal ("1.6 cm" is not 1)
    ("Pericardial effusion measuring up to 1.6 cm. LVEF 65%.", 65.0),
    ("Effusion 12 mm. Effusion depth 1.2 cm.", None),
    # a bare "EF" in a right-ventricular field line is the RV's
    ("RV: mildly dilated, RVEDVi 120 ml/m2, EF 49%.\nLV: EF 54%. Normal size.", 54.0),
    ("Right ventricle: EF 40%.\nLeft ventricle: EF 60%.", 60.0),
    ("LV: EF 54%.\nRV: EF 49%.", 54.0),
    ("RV: normal size; normal function. LV normal, EF 63%.", 63.0),
    ("Indication: dilated cardiomyopathy? (echo EF 45%).\nLVEDVi 90 ml/m2, LVEF 55%.", 55.0),
    ("TTE LVEF 35%. CMR: LVEF 41%.", 41.0),
    ("Right heart: dilated RA and RV, RVEF 50%. Left ventricle normal, EF 60%.", 60.0),
])
def test_lvef_as_stated(text, expected):
    assert parse_lvef(text) == expected
