import pickle

import pytest

from detectors.config import load_settings, with_override
from detectors.features import NumberState, fingerprint

# Full state from the first call, so counts in these tests are exact.
FS = with_override(load_settings(), "features.promote_after", 1).features
T0 = 1_714_521_600.0


def call(st: NumberState, t: float, callee: int, answered: bool = False, talk: int = 0,
         ring: float | None = 10.0, failed: bool = False) -> None:
    st.outbound(t, callee, answered, talk, ring, failed, FS)


def test_listened_calls_are_answered_ones_not_cut_short_over_all_calls() -> None:
    st = NumberState(FS, T0)
    for i, (answered, talk) in enumerate([(True, 3), (True, 40), (False, 0), (True, 12)]):
        call(st, T0 + i, 8613900000000 + 1000 * i, answered=answered, talk=talk)
    f = st.features(600, T0 + 5, FS)
    assert f["listened_ratio"] == 0.5 and f["short_call_ratio"] == 1 / 3


def test_sliding_window_forgets_old_calls() -> None:
    st = NumberState(FS, T0)
    for i in range(60):
        call(st, T0 + 10 * i, 8613900000000 + 1000 * i)
    assert st.features(600, T0 + 590, FS)["attempts"] == 60
    assert st.features(600, T0 + 2000, FS)["attempts"] == 0
    assert st.features(3600, T0 + 2000, FS)["attempts"] == 60


def test_sliding_estimate_between_buckets_is_proportional() -> None:
    st = NumberState(FS, T0)
    start = (T0 // 600) * 600
    for i in range(100):
        call(st, start + i, 8613900000000 + 1000 * i)
    # Half-way through the next bucket, half of the previous bucket still counts.
    assert st.features(600, start + 900, FS)["attempts"] == 50


def test_ratios() -> None:
    st = NumberState(FS, T0)
    for i in range(10):
        call(st, T0 + i, 8613900000000 + 1000 * i, answered=i < 4, talk=5 if i < 2 else 60,
             ring=2.0)
    f = st.features(600, T0 + 10, FS)
    assert f["answer_ratio"] == 0.4
    assert f["short_call_ratio"] == 0.5  # 2 of the 4 answered were under short_call_s
    assert f["ring_once_ratio"] == pytest.approx(0.6)  # 6 unanswered, each rang 2 s
    assert f["mean_talk_s"] == (5 + 5 + 60 + 60) / 4
    assert f["distinct_ratio"] == 1.0


def test_repeats_after_refusal_and_callbacks() -> None:
    st = NumberState(FS, T0)
    victim = 8613900000001
    for i in range(5):  # refused five times
        call(st, T0 + 60 * i, victim)
    f = st.features(3600, T0 + 300, FS)
    assert f["distinct_ratio"] == 0.2
    assert f["repeat_refused"] == 3  # calls 3, 4 and 5 came after two refusals
    friend = 8613900000002
    call(st, T0 + 400, friend)
    st.inbound(T0 + 410, friend, FS)
    f = st.features(3600, T0 + 420, FS)
    assert f["inbound"] == 1 and f["callback_ratio"] == 0.5


def test_sequential_dialling() -> None:
    st = NumberState(FS, T0)
    for i in range(20):
        call(st, T0 + i, 8613900000000 + i)
    assert st.features(600, T0 + 20, FS)["sequential_ratio"] == pytest.approx(19 / 20)


def test_state_is_bounded_and_small() -> None:
    st = NumberState(FS, T0)
    for i in range(5000):
        call(st, T0 + i, 8613900000000 + 7919 * i, answered=i % 3 == 0, talk=30)
    assert st.ring is not None and len(st.ring) == FS.recent_callees
    assert len(pickle.dumps(st, protocol=pickle.HIGHEST_PROTOCOL)) < 1024


def test_pickle_round_trip_keeps_behaviour() -> None:
    a = NumberState(FS, T0)
    for i in range(30):
        call(a, T0 + 10 * i, 8613900000000 + 31 * i)
    b = pickle.loads(pickle.dumps(a))
    for st in (a, b):
        call(st, T0 + 500, 8613900000000)
    assert a.features(600, T0 + 501, FS) == b.features(600, T0 + 501, FS)


def test_bytes_round_trip_keeps_behaviour_and_is_smaller_than_a_pickle() -> None:
    a = NumberState(FS, T0)
    for i in range(300):
        call(a, T0 + 10 * i, 8613900000000 + 31 * i, answered=i % 4 == 0, talk=12)
    a.trunk = "gw-云-7"
    data = a.to_bytes()
    assert len(data) < len(pickle.dumps(a, protocol=pickle.HIGHEST_PROTOCOL))
    b = NumberState.from_bytes(data)
    assert (b.trunk, b.first_seen, b.calls, bytes(b.refusals)) == (
        a.trunk, a.first_seen, a.calls, bytes(a.refusals))
    for st in (a, b):
        call(st, T0 + 3100, 8613900000000)
    assert a.features(3600, T0 + 3101, FS) == b.features(3600, T0 + 3101, FS)
    a.trunk = None
    assert NumberState.from_bytes(a.to_bytes()).trunk is None


def test_a_giant_trunk_name_is_cut_to_whole_characters() -> None:
    st = NumberState(FS, T0)
    st.trunk = "云" * 30_000  # 90,000 bytes of UTF-8
    back = NumberState.from_bytes(st.to_bytes())
    assert back.trunk is not None and 60_000 < len(back.trunk.encode()) < 65_535
    assert set(back.trunk) == {"云"}


def test_attempts_is_the_attempts_slot_of_the_window() -> None:
    st = NumberState(FS, T0)
    for i in range(200):
        call(st, T0 + 37.5 * i, 8613900000000 + i)
    for horizon in FS.horizons_s:
        for dt in (0.0, 1.0, 599.9, 600.0, 3599.0, 7200.0, 7500.0, 30_000.0, 90_000.0):
            now = T0 + 37.5 * 199 + dt
            assert st.attempts(horizon, now, FS) == st.window(horizon, now, FS)[0]


@pytest.mark.parametrize("bad", [b"", b"DGS\x01", b"\x80\x05junk", b"DGS\x02" + bytes(700)])
def test_bytes_that_are_not_a_state_are_refused(bad: bytes) -> None:
    with pytest.raises(ValueError):
        NumberState.from_bytes(bad)


def test_truncated_or_padded_state_bytes_are_refused() -> None:
    data = NumberState(FS, T0).to_bytes()
    for broken in (data[:-1], data + b"x"):
        with pytest.raises(ValueError, match="does not match its header"):
            NumberState.from_bytes(broken)


def test_late_call_is_counted_not_lost() -> None:
    st = NumberState(FS, T0)
    call(st, T0 + 1000, 8613900000001)
    call(st, T0 + 10, 8613900000002)  # arrives late
    assert st.features(3600, T0 + 1000, FS)["attempts"] == 2



def test_a_caller_of_ours_is_a_contact_not_a_stranger() -> None:
    st = NumberState(FS, T0)
    friend, stranger = 8613900000001, 8613900000999
    st.inbound(T0, friend, FS)
    call(st, T0 + 10, friend, answered=True, talk=30)
    call(st, T0 + 20, stranger, answered=True, talk=30)
    f = st.features(3600, T0 + 30, FS)
    assert f["strangers"] == 1  # the friend called us first
    assert f["contact_ratio"] == 0.5
    assert f["callback_ratio"] == 0.0  # they called before we did: not a call-back
    assert st.strangers_in_ring() == [fingerprint(stranger)]


def test_a_long_talk_makes_a_contact() -> None:
    st = NumberState(FS, T0)
    callee = 8613900000002
    call(st, T0, callee, answered=True, talk=int(FS.contact_talk_s))
    call(st, T0 + 600, callee, answered=True, talk=20)
    f = st.features(3600, T0 + 700, FS)
    assert (f["strangers"], f["contact_ratio"], f["stranger_repeat_ratio"]) == (1, 0.5, 0.0)
    assert st.strangers_in_ring() == []


def test_calling_the_same_strangers_again_is_counted() -> None:
    st = NumberState(FS, T0)
    for i in range(12):
        call(st, T0 + 60 * i, 8613900000100 + i % 3)  # three people, never answered
    f = st.features(3600, T0 + 800, FS)
    assert f["strangers"] == 3
    assert f["stranger_repeat_ratio"] == 9 / 12
    assert f["refused_callees"] == 3
    assert f["contact_ratio"] == 0.0
    assert f["missed_retry_ratio"] == 9 / 12  # nine tries again over twelve misses


def test_missed_retry_ratio_is_over_the_calls_not_answered() -> None:
    """A courier's day in small: eight customers answer, four miss and two of those are
    tried again (answered then): two retries over the four calls not answered."""
    st = NumberState(FS, T0)
    for i in range(8):
        call(st, T0 + 60 * i, 8613900000200 + i, answered=True, talk=20)
    for i in range(4):
        call(st, T0 + 600 + 60 * i, 8613900000300 + i)
    for i in range(2):
        call(st, T0 + 900 + 60 * i, 8613900000300 + i, answered=True, talk=20)
    f = st.features(3600, T0 + 1100, FS)
    assert f["stranger_repeat_ratio"] == pytest.approx(2 / 14)
    assert f["missed_retry_ratio"] == pytest.approx(2 / 4)
    assert NumberState(FS, T0).features(3600, T0, FS)["missed_retry_ratio"] == 0.0
    for i in range(4):  # the same answered stranger again and again: more tries than misses
        call(st, T0 + 1000 + 10 * i, 8613900000200, answered=True, talk=20)
    assert st.features(3600, T0 + 1100, FS)["missed_retry_ratio"] == 1.0


def test_a_call_back_still_counts_and_clears_refusals() -> None:
    st = NumberState(FS, T0)
    callee = 8613900000003
    call(st, T0, callee)
    call(st, T0 + 60, callee)
    st.inbound(T0 + 120, callee, FS)
    f = st.features(3600, T0 + 130, FS)
    assert f["callback_ratio"] == 1.0
    assert f["refused_callees"] == 0
    call(st, T0 + 200, callee)
    assert st.features(3600, T0 + 210, FS)["contact_ratio"] == pytest.approx(1 / 3)


def test_refusal_counts_saturate_below_the_flags() -> None:
    st = NumberState(FS, T0)
    for i in range(200):
        call(st, T0 + i, 8613900000004)
    assert st.refusals[0] & 0xC0 == 0
    assert st.features(3600, T0 + 300, FS)["refused_callees"] == 1


def test_new_counters_survive_the_binary_form() -> None:
    st = NumberState(FS, T0)
    st.inbound(T0, 8613900000005, FS)
    call(st, T0 + 1, 8613900000005, answered=True, talk=200)
    back = NumberState.from_bytes(st.to_bytes())
    assert back.features(3600, T0 + 5, FS) == st.features(3600, T0 + 5, FS)
    assert back.strangers_in_ring() == st.strangers_in_ring()


def test_a_state_of_the_previous_layout_is_refused() -> None:
    st = NumberState(FS, T0)
    call(st, T0, 8613900000006)
    old = b"DGS\x01" + st.to_bytes()[4:]
    with pytest.raises(ValueError):
        NumberState.from_bytes(old)


def layout_3(st: NumberState) -> bytes:
    """``st`` as layout 3 wrote it (``st.ring_id`` None): no ring id length in the header."""
    assert st.ring_id is None
    data = st.to_bytes()
    return b"DGS\x03" + data[4:10] + data[12:]


def test_a_state_of_layout_2_is_read_with_no_position_applied() -> None:
    st = NumberState(FS, T0)
    call(st, T0, 8613900000007, answered=True, talk=30)
    assert st.first_delivery(3, 0)
    data = layout_3(st)
    # layout 2: the same header and arrays as 3, two floats (the applied position) fewer
    n_counts = len(st.counts)
    cut = 10 + 4 * n_counts + 8 * 8
    old = b"DGS\x02" + data[4:cut] + data[cut + 16:]
    back = NumberState.from_bytes(old)
    assert back.features(3600, T0 + 5, FS) == st.features(3600, T0 + 5, FS)
    assert back.first_delivery(0, 0)  # nothing was known to be applied
    assert NumberState.from_bytes(back.to_bytes()).to_bytes() == back.to_bytes()


def test_the_applied_position_survives_the_binary_form_and_a_pickle() -> None:
    st = NumberState(FS, T0)
    assert st.first_delivery(41, 6)
    for back in (NumberState.from_bytes(st.to_bytes()), pickle.loads(pickle.dumps(st))):
        assert not back.first_delivery(41, 6) and not back.first_delivery(40, 99)
        assert back.first_delivery(41, 7)


def test_a_state_of_layout_3_is_read_with_no_ring_id() -> None:
    st = NumberState(FS, T0)
    call(st, T0, 8613900000008, answered=True, talk=30)
    st.trunk = "gw-3"
    assert st.first_delivery(5, 2)
    back = NumberState.from_bytes(layout_3(st))
    assert back.ring_id is None and back.trunk == "gw-3"
    assert back.features(3600, T0 + 5, FS) == st.features(3600, T0 + 5, FS)
    assert not back.first_delivery(5, 2)  # layout 3 kept the applied position
    assert back.to_bytes() == st.to_bytes()


def test_the_ring_id_survives_the_binary_form_and_a_pickle() -> None:
    st = NumberState(FS, T0)
    call(st, T0, 8613900000009)
    st.trunk = "gw-9"
    st.ring_id = "ring-00c0ffee0042"
    data = st.to_bytes()
    assert len(data) == len(NumberState(FS, T0).to_bytes()) + len("gw-9") + len(st.ring_id)
    for back in (NumberState.from_bytes(data), pickle.loads(pickle.dumps(st))):
        assert (back.ring_id, back.trunk) == ("ring-00c0ffee0042", "gw-9")
        assert back.to_bytes() == data
    st.ring_id = None
    assert NumberState.from_bytes(st.to_bytes()).ring_id is None


def test_a_pickle_from_before_the_ring_id_loads_without_one() -> None:
    st = NumberState(FS, T0)
    call(st, T0, 8613900000010)
    old = NumberState.__new__(NumberState)
    old.__setstate__(st.__getstate__()[:5])  # what a pickle of five slots gives back
    assert old.ring_id is None and old.to_bytes() == st.to_bytes()


def test_a_ring_id_too_long_to_store_is_refused_not_cut() -> None:
    st = NumberState(FS, T0)
    st.ring_id = "r" * 0xFFFF
    with pytest.raises(ValueError, match="ring id"):
        st.to_bytes()


def test_a_member_state_stays_small() -> None:
    st = NumberState(FS, T0)
    for i in range(5000):
        call(st, T0 + i, 8613900000000 + 7919 * i, answered=i % 3 == 0, talk=30)
    st.trunk = "gw-cloud-0001"
    st.ring_id = "ring-00c0ffee0042"
    assert len(pickle.dumps(st, protocol=pickle.HIGHEST_PROTOCOL)) < 1024
    assert len(st.to_bytes()) < 1024


def test_late_calls_count_in_their_own_bucket_not_the_newest() -> None:
    """Calls of an hour that arrive after a newer one (a takeover's re-read messages) must not
    crowd the 10-minute window: each counts where it falls, or in no window it is too old for.
    Before, all ten counted as current: "10 calls in 10 min" for calls spread over an hour."""
    fs = load_settings().features
    t0 = 36000.0
    in_order = NumberState(fs, first_seen=t0)
    late = NumberState(fs, first_seen=t0)
    times = [t0 + 360.0 * i for i in range(10)]  # one call every 6 minutes for an hour
    for i, t in enumerate(times):
        in_order.outbound(t, 8613900000000 + i, False, 0, 20.0, False, fs)
    late.outbound(times[-1], 8613900000009, False, 0, 20.0, False, fs)  # the newest first
    for i, t in enumerate(times[:-1]):
        late.outbound(t, 8613900000000 + i, False, 0, 20.0, False, fs)
    now = times[-1]
    for h in fs.horizons_s:
        assert late.attempts(h, now, fs) == in_order.attempts(h, now, fs)
    assert late.attempts(600, now, fs) < 3
    assert late.last_seen == now  # a late call does not move the number's clock back


def test_a_late_call_received_counts_in_its_own_bucket_too() -> None:
    """A call received an hour before the newest call made counts where it would have had it
    come in order: not in the 10-minute window."""
    fs = load_settings().features
    late, in_order = NumberState(fs, first_seen=36000.0), NumberState(fs, first_seen=36000.0)
    in_order.inbound(36100.0, 8613900000002, fs)
    in_order.outbound(39700.0, 8613900000001, False, 0, 20.0, False, fs)
    late.outbound(39700.0, 8613900000001, False, 0, 20.0, False, fs)
    late.inbound(36100.0, 8613900000002, fs)
    for h in fs.horizons_s:
        assert late.features(h, 39700.0, fs) == in_order.features(h, 39700.0, fs)
    assert late.features(600, 39700.0, fs)["inbound"] == 0.0
