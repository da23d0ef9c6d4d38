"""Agreement with the archived `lifetimes` package and with the literature.

The reference numbers come from ``benchmarks/lifetimes_reference.py`` (lifetimes 0.11.3,
numpy 2.4.6, pandas 3.1.1, scipy 1.17.1), run as::

    /work/venv-lifetimes/bin/python benchmarks/lifetimes_reference.py

Parameters must agree to 4 significant digits (relative difference below 1e-4);
per-customer predictions computed at lifetimes' parameters to 1e-6.
"""

from __future__ import annotations

import base64
import zlib

import numpy as np
import pandas as pd
import pytest

import segmentkit as sk
from _btyd_synthetic import synthetic, wholesale_heavy

SIG4 = 1e-4
CALIBRATION_END = pd.Timestamp("1997-09-30")
CDNOW_IDS = [
    "00001",
    "00003",
    "00004",
    "00005",
    "00010",
    "00100",
    "01000",
    "05000",
    "10000",
    "15000",
    "20000",
    "23570",
]
CDNOW = {
    "bg": {
        "r": 0.251624011424104,
        "alpha": 4.788945170327028,
        "a": 0.7234330357288162,
        "b": 2.161086981372379,
    },
    "bg_ll": -6297.654343274424,
    "bg_p_alive": [
        1.0,
        0.3642361908483811,
        0.729390439907397,
        0.8867595721542995,
        1.0,
        1.0,
        1.0,
        0.6462689749469577,
        0.710309095869278,
        1.0,
        1.0,
        0.2247955986633685,
    ],
    "bg_expected": [
        0.20008979215444775,
        0.6173917937058201,
        1.232875748266884,
        4.645265969869341,
        0.21264311599060765,
        0.20008979215444775,
        0.2119777091703914,
        1.1538564050747209,
        1.33558096525855,
        0.23725438573709848,
        0.2513947782309982,
        0.2829718782574657,
    ],
    "bg_p_alive_sum": 19215.203380280247,
    "bg_expected_sum": 16873.737004341667,
    "pnbd": {
        "r": 0.5974321897163557,
        "alpha": 11.585866661975341,
        "s": 0.5221883314195679,
        "beta": 8.827379972529744,
    },
    "pnbd_p_alive": [
        0.29034103920869586,
        0.38500074661783057,
        0.8791636073816529,
        0.971998771799133,
        0.30727700892295023,
        0.29034103920869586,
        0.3063863245595119,
        0.7611637840887646,
        0.8539478244294618,
        0.33966309469792794,
        0.35777747025654344,
        0.2160181052979502,
    ],
    "pnbd_expected": [
        0.11342791804185187,
        0.6555182519186619,
        1.4932648274101645,
        4.828980633787403,
        0.12617676042403791,
        0.11342791804185187,
        0.12549030487387824,
        1.3554219479697103,
        1.5895656716307085,
        0.15233788237018045,
        0.1679869895554786,
        0.2828177840789572,
    ],
    "pnbd_p_alive_sum": 10522.24977687871,
    "gg": {"p": 6.275358592836066, "q": 3.624450210391096, "v": 14.983688961951682},
    "gg_spend": [
        35.82770246792159,
        22.861360505391186,
        24.676748995253714,
        33.27804371284029,
        35.82770246792159,
        35.82770246792159,
        35.82770246792159,
        33.10445228076587,
        32.26912545855122,
        35.82770246792159,
        35.82770246792159,
        40.856768326995116,
    ],
}
SYNTHETIC_IDS = [0, 1, 2, 3, 5, 8, 13, 21, 34, 55]
SYNTHETIC = {
    "bg": {
        "r": 0.6388867496308084,
        "alpha": 4.750761253849082,
        "a": 1.0516297043425398,
        "b": 3.2048850417466825,
    },
    "bg_ll": 588.3998587395787,
    "bg_p_alive": [
        0.3853570575451824,
        0.9144631584848393,
        0.7105334170660444,
        1.0,
        1.0,
        0.24354007001120687,
        0.7503709765232021,
        0.2432328464593405,
        0.08682626800510125,
        0.6882103223878879,
    ],
    "bg_expected": [
        1.2959209191646863,
        7.574301687318056,
        1.1849916500263942,
        0.7691868693281746,
        0.7128640744336976,
        0.278948778866532,
        1.8459980896391244,
        0.33176406136146147,
        0.26534302754029615,
        1.1407048031832712,
    ],
    "bg_p_alive_sum": 243.8003748247064,
    "bg_expected_sum": 523.0857559744911,
    "pnbd": {
        "r": 1.364555223080822,
        "alpha": 11.973649642694927,
        "s": 167.25978612996158,
        "beta": 5749.4354697303315,
    },
    "pnbd_p_alive": [
        0.33234225473423,
        0.9919292083722353,
        0.8885286811553871,
        0.3690834930521374,
        0.3216744996982447,
        0.11957835246765801,
        0.8057917654474027,
        0.17195895397045874,
        0.0653965945150742,
        0.6703003809707813,
    ],
    "pnbd_expected": [
        0.8642469531271689,
        6.229432774215875,
        1.3464971163659245,
        0.35865089415129264,
        0.2906053334127357,
        0.12351456500519108,
        1.5568411713839883,
        0.21230302050773978,
        0.15333703133386953,
        0.9061075990734122,
    ],
    "pnbd_p_alive_sum": 165.58893015692783,
    "gg": {"p": 9.623102577288094, "q": 7.706820793891301, "v": 31.09745064400825},
    "gg_spend": [
        29.307838557148838,
        67.90696923015147,
        48.597456264573935,
        44.6193459816328,
        44.6193459816328,
        46.87082902263498,
        68.97238387510468,
        47.79601836387872,
        48.2903700040882,
        47.38591866340053,
    ],
}
# lifetimes' BG/NBD on 200 customers of whom nobody bought again: no error, no warning,
# and the a and b of its starting point (exp(0.1)) back as the answer.
LIFETIMES_NO_REPEAT = {
    "r": 0.00025541043835227654,
    "alpha": 62955.38395905045,
    "a": 1.1051709180756148,
    "b": 1.1051709180755585,
}

# The customers of CDNOW's 1/10 sample (CDNOW_sample.txt in lifetimes' data sets: 2,357
# master-file ids) as a zlib-compressed bitmap over ids 1..23570.
SAMPLE_BITMAP = (
    "eNotVkGOW0UQra4pDzXWILWNFRmURXsySBZiYWWVZdt44QULr1mZnIAjlC0TjUQWE05gUA7AEQxiwTJH4r360cjj"
    "7/7dXVWv3nvdLlMRUe/SRK43MpMuB6nSQupYLapIkRIqtbbSRVxCZBIFi0ovDb+1SRvLMwZ8Jl7x2rrwD0/vZe/V"
    "+DQWuRErYrLAT8MaBJGlyC03wIQZVpu01rkn9pYo9whsW0zU2jn9TkYqdwVR8dbkzCSfJI7Si1fZbKP3T3MOYqRa"
    "+8OkB9O/61VQgLwWx0Bgf5M1wyOLiVyl+8cqCUCRubzVemQmgqIXgvEzih2JrfDeTKa9ZIpzTJ40PzfN3YsMSEmp"
    "+VQmIn+K1TlS6Z1gXBn5zIiA8cO5LpGDI6PyeEImKiuzg+yFoVWaY9bttWmt2PMiHgC1tLGxQTFpjTGW3Z4MXwjY"
    "w6uKBmvq2OKAntbyfkB5DLyvLAj5bNC9ignM8kH6qZbieIw94xoX56tP+HIlaLVtM3ciUkv2CiUGmVCxOLDKJ8wA"
    "nxUHBeX06V4exTF7+at8J1tkg38zf7S4KFp8FXmXnRHZlE5OBYarXJQcmcji2bFNI56IWseydgOP+KsDEWaeSKDz"
    "KwuZInHZq5DLas52xH73o7QRiQRY7q0itYaX2MNbC9u1A4FqzEyTEY7VpOVzlMKM0fVpOF+pl+rbAlqBWwXNbCay"
    "6Flyk/KQKKPfQezQwZm1SOBd8f34WRDrIh8gE02ILxF6kid02nXhgTFGuoslmGNU5LqDfpPjAdHLksl5fJCgMtyo"
    "ISxk+Ftsj6Q7y3KHJFJCFxK8TFNIHr2hyiOak/L1QmpJ79lnUuaNJyp4Vkv64BmwPYMtcq/EGGkh2gMKnONzJJb4"
    "VrDwHtzMWo9c968kJt5H4DYSh4egtgW2OkvqHgNRoyUXCcOY3tBN7QFfI1AWekZSVYmH3EJnvS5oOCjoFlkgTwNm"
    "KHswmA6GyY4tLPj3Sk4FmoXc+u4gG2mgzCi7i/Q+0LbQvwcpa5pOvYsAlM942zW2ChaWK3WhqY5Lpz01L2qlknXB"
    "TWBhqskVOhmDpxmBWkpP2AOBQK3UbC1J38dpyBI2lv3F3rm5lbYFlKRmk7OJbZrPDHCZVrK6PrcBo1DG+ZqOUMZT"
    "SsKb/P0POwfh1f4OWiTDMamj4EjSUQZmGe+UaIKvawD7kgFRQbckBshEnvSf5SdAM21ZlMqxK7jh9AhuN0qOG+uE"
    "fJBGh3GhOqOzIgfwAjlMqsNlsKuDzBOYFilCRJnFrG4ccl9BdrKgOJ9Eb7FHUPequoWZ7ZD9uZaROUp9CiYHUlvv"
    "Rtle0nHYcpmueqMXgrNYOiPb6EcGc0cOL7ANG9SYQT0BiJjDvLJjJ35d4LH4ssqq5AsaACp7xH8gc0BB9I5fcgnE"
    "e5S0nEGeN7FQ7CeHVv1VOYIZ4st5kN3YviV4NhwueH7NruEVtrDGnoMcnuo64WTDCG0HBwlzB+0PHT+/pH8Z1Is6"
    "A0cyVEAUKBtq6arPsm2RFUvtqCSqXShZ7V+Jr23gVrDJKiO0+Ym1qjqFBecamF1wJs36Dorv08H9SpS9QT1YYTpJ"
    "CZt76SuYAxx8MArSrKT+urxNx8OD8kDAx2vK8QDeGEaeNlzDfNa2HUeej5GqOORGmNsbq8iDE9jNmSWP0Fd0s83A"
    "toUkf4jr1D2P52y9VoRdse494W3tOQVwcrn/9mOH7W3zdKI3wPOM004gcH0autkA+X8pR0Uv6A41SeZZgodP0cIC"
    "8pCeuC+s6YPhfgstPvAGALhIIZUfsPOS3Sjp6jTze5B+suBpiVjbTowcLGAWDbI6g7dGnC6U/gOOGbVHtibNpCsm"
    "8OzZkQEtGZM0mdGiiF9L3/njryV6PrzTvEPI5wZIRJ/L796MTosVWxnuYlQIObfAMgf03+fYY25Hlx50Huywsk/a"
    "7vc4gEzBiUseYNU9CN9dfHY/NFc99DfaA5LfYB4gDztijk3iAjvl1QNv8WyR3MfZDgoWG66RHXznbXOXOJqOWeBy"
    "hxN0C4ceDiWIn9LgTWF66WQokixbBD7maSZl4koV9VKvUq+Ka8HQTZxmDNnueZSBPC/Tr3WQOLq6wr2Myn4z+FuK"
    "PMJSx4wCbpQePa9TKazhcHxgWn3XlalYHgANTd/gruwW7zvuAd/wwjdL2dCpQrlFvQV7m8YegW5Q+PgFo3bU/D8S"
    "4ioI"
)


def cdnow_btyd(raw: pd.DataFrame) -> pd.DataFrame:
    """lifetimes' calibration summary in weeks: repeat purchase days, t_x, T, repeat spend."""
    lines = raw.assign(day=pd.to_datetime(raw["date"], format="%Y%m%d"))
    lines = lines[lines["day"] <= CALIBRATION_END]
    days = lines.groupby(["customer_id", "day"], as_index=False)["dollar_value"].sum()
    grouped = days.groupby("customer_id")
    first, last, n = grouped["day"].min(), grouped["day"].max(), grouped["day"].size()
    first_value = days.drop_duplicates("customer_id").set_index("customer_id")["dollar_value"]
    repeat_spend = (grouped["dollar_value"].sum() - first_value) / (n - 1).where(n > 1)
    return pd.DataFrame(
        {
            "frequency": (n - 1).astype(float),
            "recency": (last - first).dt.days / 7,
            "T": (CALIBRATION_END - first).dt.days / 7,
            "monetary_value": repeat_spend.fillna(0.0),
        }
    )


@pytest.fixture(scope="module")
def cdnow(cdnow_raw: pd.DataFrame) -> pd.DataFrame:
    return cdnow_btyd(cdnow_raw)


def assert_params(fitted: dict, reference: dict) -> None:
    for name, value in reference.items():
        assert fitted[name] == pytest.approx(value, rel=SIG4), name


def test_bg_nbd_matches_lifetimes_on_cdnow(cdnow: pd.DataFrame) -> None:
    bg = sk.BetaGeoModel(time_unit="W").fit(cdnow)
    assert_params(bg.params_, CDNOW["bg"])
    same = sk.BetaGeoModel.from_params(CDNOW["bg"], time_unit="W")
    chosen = cdnow.loc[CDNOW_IDS]
    np.testing.assert_allclose(same.p_alive(chosen), CDNOW["bg_p_alive"], rtol=0, atol=1e-6)
    expected = same.expected_purchases(chosen, 39)
    np.testing.assert_allclose(expected, CDNOW["bg_expected"], rtol=0, atol=1e-6)
    assert same.p_alive(cdnow).sum() == pytest.approx(CDNOW["bg_p_alive_sum"], rel=1e-9)
    total = same.expected_purchases(cdnow, 39).sum()
    assert total == pytest.approx(CDNOW["bg_expected_sum"], rel=1e-9)


def test_features_path_gives_the_same_fit(cdnow_raw: pd.DataFrame, cdnow_tx, cdnow) -> None:
    feats = sk.extract_features(cdnow_tx, as_of="1997-09-30")
    # The feature is lifetimes' count of purchase days, customer by customer.
    days = feats.frame["purchase_days"]
    pd.testing.assert_series_equal(
        days.loc[cdnow.index], (cdnow["frequency"] + 1).astype(np.int64), check_names=False
    )
    bg = sk.BetaGeoModel(time_unit="W").fit(feats)
    assert_params(bg.params_, CDNOW["bg"])
    out = bg.transform(feats, horizon=39)
    assert {"p_alive", "expected_purchases_39w"} <= set(out.columns)


def test_pareto_nbd_matches_lifetimes_on_cdnow(cdnow: pd.DataFrame) -> None:
    pnbd = sk.ParetoNBDModel(time_unit="W").fit(cdnow)
    assert_params(pnbd.params_, CDNOW["pnbd"])
    same = sk.ParetoNBDModel.from_params(CDNOW["pnbd"], time_unit="W")
    chosen = cdnow.loc[CDNOW_IDS]
    np.testing.assert_allclose(same.p_alive(chosen), CDNOW["pnbd_p_alive"], rtol=0, atol=1e-6)
    expected = same.expected_purchases(chosen, 39)
    np.testing.assert_allclose(expected, CDNOW["pnbd_expected"], rtol=0, atol=1e-6)
    assert same.p_alive(cdnow).sum() == pytest.approx(CDNOW["pnbd_p_alive_sum"], rel=1e-9)


def test_gamma_gamma_matches_lifetimes_on_cdnow(cdnow: pd.DataFrame) -> None:
    gg = sk.GammaGammaModel().fit(cdnow)
    assert_params(gg.params_, CDNOW["gg"])
    same = sk.GammaGammaModel.from_params(CDNOW["gg"])
    spend = same.expected_spend(cdnow.loc[CDNOW_IDS])
    np.testing.assert_allclose(spend, CDNOW["gg_spend"], rtol=1e-9)


def test_synthetic_set_matches_lifetimes() -> None:
    frame = synthetic(400, 7)
    chosen = frame.loc[SYNTHETIC_IDS]
    assert_params(sk.BetaGeoModel().fit(frame).params_, SYNTHETIC["bg"])
    assert_params(sk.GammaGammaModel(min_repeaters=0).fit(frame).params_, SYNTHETIC["gg"])
    bg = sk.BetaGeoModel.from_params(SYNTHETIC["bg"])
    np.testing.assert_allclose(bg.p_alive(chosen), SYNTHETIC["bg_p_alive"], atol=1e-6)
    np.testing.assert_allclose(
        bg.expected_purchases(chosen, 39), SYNTHETIC["bg_expected"], atol=1e-6
    )
    # BG/NBD data: the Pareto/NBD likelihood has no interior optimum (s and beta grow
    # together), so only predictions at lifetimes' parameters are compared.
    pnbd = sk.ParetoNBDModel.from_params(SYNTHETIC["pnbd"])
    np.testing.assert_allclose(pnbd.p_alive(chosen), SYNTHETIC["pnbd_p_alive"], atol=1e-6)
    expected = pnbd.expected_purchases(chosen, 39)
    np.testing.assert_allclose(expected, SYNTHETIC["pnbd_expected"], atol=1e-6)


def test_no_repeat_data_warns_where_lifetimes_returns_its_start() -> None:
    assert LIFETIMES_NO_REPEAT["a"] == pytest.approx(np.exp(0.1))
    T = np.linspace(5.0, 39.0, 200)
    frame = pd.DataFrame({"frequency": 0.0, "recency": 0.0, "T": T})
    with pytest.warns(sk.errors.SegmentkitWarning, match="bought again"):
        sk.BetaGeoModel().fit(frame)


# benchmarks/lifetimes_reference.py: lifetimes' BetaGeoFitter().fit on the same data.
LIFETIMES_WHOLESALE = (
    "ConvergenceError: The model did not converge. "
    "Try adding a larger penalizer to see if that helps convergence."
)


def test_wholesale_data_converge_where_lifetimes_raises() -> None:
    assert LIFETIMES_WHOLESALE.startswith("ConvergenceError")
    frame = wholesale_heavy(500, 3)
    with pytest.warns(sk.errors.SegmentkitWarning, match="do not suit this model"):
        bg = sk.BetaGeoModel().fit(frame)
    assert bg.converged_
    # Nobody leaves: the drop-out probability a / (a + b) collapses and everyone is alive.
    assert bg.params_["a"] / (bg.params_["a"] + bg.params_["b"]) < 1e-6
    assert bg.p_alive(frame).min() > 0.999
    # With nobody leaving, BG/NBD is the NBD purchase model: its rate fits the data.
    rate = bg.params_["r"] / bg.params_["alpha"]
    observed = frame["frequency"].sum() / frame["T"].sum()
    assert rate == pytest.approx(observed, rel=0.05)


def test_bg_nbd_on_the_one_tenth_sample_matches_the_literature(cdnow: pd.DataFrame) -> None:
    bits = np.frombuffer(zlib.decompress(base64.b64decode("".join(SAMPLE_BITMAP))), np.uint8)
    members = np.flatnonzero(np.unpackbits(bits, bitorder="little")[:23570]) + 1
    sample = cdnow.loc[[f"{i:05d}" for i in members]]
    assert len(sample) == 2357
    bg = sk.BetaGeoModel().fit(sample)
    # Fader, Hardie & Lee (2005): r = 0.243, alpha = 4.414, a = 0.793, b = 2.426.
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    assert {k: round(v, 3) for k, v in bg.params_.items()} == published
