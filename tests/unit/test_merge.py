"""The merge rules, including the issue's long-run properties, on the pure function."""

import random
from datetime import UTC, datetime, timedelta

from hypotheses.merge import Candidate, Entry, Kind, Withdrawn, confidence, merge, normalise, same_claim
from memory.models import EntrySource, EntryStatus

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def entry(id_, text, facet="style", *, status=EntryStatus.ACTIVE, source=EntrySource.INFERRED, pinned=False,
          support=1, vector=None, seen=NOW):
    return Entry(id_, facet, text, 0.5, support, (1,), status, source, pinned, seen, vector)


def propose(text, action="add", facet="style", entry_id=None, vector=None, evidence=(7,)):
    return Candidate(action, facet, text, 0.6, tuple(evidence), entry_id, vector)


def apply(profile, changes):
    current = {e.id: e for e in profile}
    for change in changes:
        if change.after is not None:
            current[change.after.id] = change.after
    return list(current.values())


def active(profile):
    return [e for e in profile if e.status is EntryStatus.ACTIVE]


def test_a_new_hypothesis_is_added_with_the_next_id():
    (change,) = merge([], [propose("Writes short messages.")], now=NOW, next_id=5)
    assert change.kind is Kind.ADD and change.after.id == 5 and change.after.support == 1


def test_a_duplicate_in_other_words_supports_instead_of_adding():
    profile = [entry(1, "Writes short messages.", vector=(1.0, 0.0))]
    changes = merge(profile, [propose("writes SHORT messages!"), propose("Keeps messages brief.", vector=(0.99, 0.1))],
                    now=NOW, next_id=2)
    assert [c.kind for c in changes] == [Kind.SUPPORT, Kind.SUPPORT]
    assert changes[-1].after.support == 3 and changes[-1].after.evidence == (1, 7)


def test_contradiction_supersedes_and_adds_the_new_claim():
    changes = merge([entry(1, "Prefers long explanations.")],
                    [propose("Prefers short answers.", action="contradict", entry_id=1)], now=NOW, next_id=2)
    assert [c.kind for c in changes] == [Kind.SUPERSEDE, Kind.ADD]
    assert changes[0].after.status is EntryStatus.SUPERSEDED and changes[0].after.text == "Prefers long explanations."
    assert changes[1].after.replaces == 1


def test_pinned_and_user_written_entries_survive_fifty_contradicting_jobs():
    profile = [entry(1, "Likes formal letters.", pinned=True), entry(2, "Is a night owl.", source=EntrySource.USER)]
    for job in range(50):
        changes = merge(profile, [propose(f"Hates formal letters ({job}).", action="contradict", entry_id=1),
                                  propose(f"Is an early bird ({job}).", action="contradict", entry_id=2),
                                  propose("Is a night owl.")], now=NOW, next_id=100 + 3 * job)
        profile = apply(profile, changes)
    kept = {e.id: e for e in profile}
    assert kept[1].text == "Likes formal letters." and kept[1].status is EntryStatus.ACTIVE
    assert kept[2].text == "Is a night owl." and kept[2].status is EntryStatus.ACTIVE and kept[2].support == 1


def test_a_rejected_entry_never_returns_over_fifty_jobs_in_new_words():
    profile = [entry(1, "Uses a lot of emoji.", status=EntryStatus.REJECTED, vector=(1.0, 0.0))]
    rng = random.Random(4)
    for job in range(50):
        wording = rng.choice(["uses a lot of emoji", "USES A LOT OF EMOJI!!", "Loves emoji."])
        vector = (1.0, rng.uniform(0, 0.3))  # paraphrases land close to the rejected claim
        profile = apply(profile, merge(profile, [propose(wording, vector=vector)], now=NOW, next_id=10 + job))
    assert active(profile) == []


def test_paraphrases_of_n_facts_end_with_at_most_1_2_n_active_entries():
    facts = [((1.0, 0.0, 0.0), ["Writes tersely.", "Keeps it terse.", "Is terse in writing."]),
             ((0.0, 1.0, 0.0), ["Asks many questions.", "Often asks questions.", "Asks lots of questions."]),
             ((0.0, 0.0, 1.0), ["Prefers bullet lists.", "Likes bullet points.", "Wants bullet lists."])]
    rng = random.Random(1)
    profile, next_id = [], 1
    for job in range(6):  # the wordings arrive spread over several jobs
        batch = []
        for axis, wordings in facts:
            noise = tuple(x + rng.uniform(0, 0.05) for x in axis)
            batch.append(propose(wordings[job % 3], vector=noise))
        changes = merge(profile, batch, now=NOW, next_id=next_id)
        next_id += sum(1 for c in changes if c.kind is Kind.ADD)
        profile = apply(profile, changes)
    assert len(active(profile)) <= 1.2 * len(facts)


def test_the_cap_evicts_the_weakest_inferred_entries_first():
    profile = [entry(i, f"Fact number {i}.", support=i) for i in range(1, 4)] + [entry(9, "Mine.", pinned=True)]
    changes = merge(profile, [propose("A brand new fact.")], now=NOW, next_id=10, cap=3)
    evicted = [c.before.id for c in changes if c.kind is Kind.EVICT]
    # The two weakest inferred: entry 1 (one support) and the new one (one support, confidence 0.6) go;
    # entries 2 and 3 (more support) stay, and so does the pinned one whatever its strength.
    assert evicted == [1, 10]


def test_confidence_grows_with_support_and_fades_with_time():
    assert confidence(1, NOW, NOW, 0.3) == 0.5
    assert confidence(3, NOW, NOW, 0.3) > confidence(1, NOW, NOW, 0.3)
    assert confidence(3, NOW - timedelta(days=365), NOW, 0.3) < confidence(3, NOW, NOW, 0.3)
    assert normalise("Writes SHORT, messages!") == "writes short messages"


def test_merge_does_not_touch_its_inputs():
    profile = [entry(1, "Writes short messages.")]
    merge(profile, [propose("Writes short messages.")], now=NOW, next_id=2)
    assert profile == [entry(1, "Writes short messages.")]


def test_a_rejected_entry_in_look_alike_letters_is_still_the_rejected_entry():
    profile = [entry(1, "Uses a lot of emoji.", status=EntryStatus.REJECTED)]  # no vector: the text must tell
    disguised = "Uses a l\u043et of \u0435mo\u200bji."  # Cyrillic o and e, a zero-width space
    assert normalise(disguised) == "uses a lot of emoji"
    assert active(apply(profile, merge(profile, [propose(disguised)], now=NOW, next_id=2))) == []


def test_wording_the_user_replaced_is_dropped_in_any_facet_and_any_close_wording():
    profile = [entry(1, "Writes long letters about ideas.", source=EntrySource.USER, vector=(0.0, 1.0))]
    replaced = [Withdrawn("Writes short, direct messages.", (1.0, 0.0))]
    comebacks = [propose("writes short direct msgs"), propose("Their messages are short and direct.", facet="communication"),
                 propose("Sends brief, to-the-point messages.", vector=(0.9, 0.1))]  # close only in meaning
    changes = merge(profile, comebacks, now=NOW, next_id=2, withdrawn=replaced)
    assert [c.kind for c in changes] == [Kind.SKIP] * 3
    assert merge(profile, comebacks, now=NOW, next_id=2) != changes  # without it, all three would be added


def test_same_claim_needs_most_of_the_key_words_not_the_shared_ones():
    assert same_claim("Writes short, direct messages.", "Is a direct writer who keeps it short.")
    assert same_claim("Uses a lot of emoji.", "Loves using emoji when writing.")
    assert not same_claim("Writes short, direct messages.", "Writes long messages about many topics.")
    assert not same_claim("Asks many follow-up questions.", "Prefers concrete examples before theory.")
