import pytest
from hypothesis import given
from hypothesis import strategies as st

from detectors.numbers import BadNumber, NotDialable, NumberNormaliser, pseudonym


@pytest.fixture(scope="module")
def cn() -> NumberNormaliser:
    return NumberNormaliser("CN")


@pytest.mark.parametrize(
    "raw",
    ["13812345678", "+8613812345678", "008613812345678", "0086 138 1234 5678", "+86-138-1234-5678",
     " 13812345678 "],
)
def test_one_subscriber_in_every_notation(cn: NumberNormaliser, raw: str) -> None:
    assert cn(raw) == "+8613812345678"


def test_landline_national_prefix_is_dropped(cn: NumberNormaliser) -> None:
    assert cn("02012345678") == "+862012345678"


def test_short_service_codes_are_numbers(cn: NumberNormaliser) -> None:
    assert cn("95588") == "+8695588"


def test_other_regions_use_their_own_prefixes() -> None:
    gb = NumberNormaliser("GB")
    assert gb("020 7946 0018") == gb("+44 20 7946 0018") == gb("00442079460018") == "+442079460018"
    us = NumberNormaliser("US")
    assert us("011 44 20 7946 0018") == "+442079460018"


@pytest.mark.parametrize("raw", ["", "abc", "+", "12", "+0123456", "1" * 20, "138１２３４５６７８"])
def test_rejects_what_is_not_a_number(cn: NumberNormaliser, raw: str) -> None:
    with pytest.raises(BadNumber):
        cn(raw)


def test_unknown_region_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="unknown region"):
        NumberNormaliser("XX")


def test_cache_is_bounded() -> None:
    n = NumberNormaliser("CN", cache_size=10)
    for i in range(100):
        n(f"138{i:08d}")
    assert len(n._cache) <= 10
    assert n("13800000005") == "+8613800000005"


@given(st.text(max_size=30))
def test_never_raises_anything_but_bad_number(text: str) -> None:
    n = NumberNormaliser("CN")
    try:
        out = n(text)
    except BadNumber:
        return
    assert out.startswith("+") and out[1:].isdigit() and 3 <= len(out) - 1 <= 15


def test_pseudonyms_are_stable_salted_and_hide_the_number() -> None:
    p = pseudonym("+8613812345678")
    assert p == pseudonym("+8613812345678")
    assert p != pseudonym("+8613812345679")
    assert p != pseudonym("+8613812345678", salt="carrier-a")
    assert "13812345678" not in p


@pytest.mark.parametrize("raw", ["s", "h", "t", "i", "fax", "*97", "#8", "100", "8001", "0100",
                                 "  200 "])
def test_dialplan_names_and_extensions_are_not_dialable(raw: str) -> None:
    with pytest.raises(NotDialable):
        NumberNormaliser("CN")(raw)


@pytest.mark.parametrize("raw", ["hello", "", "13900-hello", "１３８００００００００１",
                                 "١٣٨٠٠٠٠٠٠٠١", "¹³⁸"])
def test_garbage_and_non_ascii_digits_are_bad_numbers_not_dialplan(raw: str) -> None:
    with pytest.raises(BadNumber) as caught:
        NumberNormaliser("CN")(raw)
    assert not isinstance(caught.value, NotDialable)


def test_five_digit_service_codes_stay_numbers() -> None:
    n = NumberNormaliser("CN")
    assert (n("10086"), n("95588"), n("12345")) == ("+8610086", "+8695588", "+8612345")
