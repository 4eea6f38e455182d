"""Hybrid recall with the real model, real FAISS, on SQLite and PostgreSQL."""

import random
from dataclasses import replace

import numpy as np
import pytest
from sqlalchemy import text

from memory import store
from memory.db import read, write
from memory.index import UserIndexes
from memory.models import Author, Embedding, MessageStatus
from memory.retrieve import RecallQuery, recall
from memory.vectors import count_pending, embed_pending


def user(engine, name):
    return write(engine, lambda s: store.create_user(s, identifier=name, password="password1"))


def say(engine, who, thread, text_, author=Author.USER, status=MessageStatus.COMPLETE, step=None):
    def work(session):
        store.upsert_thread(session, thread_id=thread, user_id=who.id, name=f"{thread} chat")
        return store.save_message(session, step_id=step or f"{thread}-{random.random()}", thread_id=thread,
                                  user_id=who.id, author=author, content=text_, status=status)

    return write(engine, work)


def ask(engine, indexes, embedder, who, question, **options):
    query = RecallQuery(user_id=who.id, text=question, vector=embedder.encode_one(question), **options)
    return read(engine, lambda s: recall(s, indexes, query))


@pytest.fixture
def history(engine, embedder):
    ada = user(engine, "ada")
    facts = ["My sister Clara lives in Lisbon and teaches piano.",
             "I adopted a grey cat called Pixel last spring.",
             "For work I maintain a compiler written in OCaml.",
             "My favourite colour is teal, like the sea near Porto."]
    for i, fact in enumerate(facts):
        say(engine, ada, f"old{i}", fact)
        say(engine, ada, f"old{i}", "Thanks for telling me!", author=Author.ASSISTANT)
    embed_pending(engine, embedder)
    return ada


def test_the_relevant_fact_comes_back_from_an_older_thread(engine, indexes, embedder, history):
    found = ask(engine, indexes, embedder, history, "What is the name of my pet?")
    assert "Pixel" in found[0].content and found[0].thread_id == "old1" and found[0].thread_name == "old1 chat"
    found = ask(engine, indexes, embedder, history, "which programming language do I use at my job")
    assert "OCaml" in found[0].content


def test_lexical_alone_works_while_the_model_is_loading(engine, indexes, history):
    query = RecallQuery(user_id=history.id, text="Lisbon piano", vector=None)
    found = read(engine, lambda s: recall(s, indexes, query))
    assert "Clara" in found[0].content


def test_options_authors_window_dont_remember_incomplete_and_duplicates(engine, indexes, embedder, history):
    found = ask(engine, indexes, embedder, history, "thanks", authors=frozenset({Author.ASSISTANT}))
    assert found and all(f.author == Author.ASSISTANT for f in found)
    assert len([f for f in found if f.content == "Thanks for telling me!"]) == 1  # four copies collapse to one
    cat = ask(engine, indexes, embedder, history, "my cat")[0]
    assert cat.message_id not in {f.message_id for f in ask(
        engine, indexes, embedder, history, "my cat", exclude_message_ids=frozenset({cat.message_id}))}
    write(engine, lambda s: setattr(store.get_thread(s, thread_id="old1"), "remember", False))
    assert all(f.thread_id != "old1" for f in ask(engine, indexes, embedder, history, "my cat Pixel"))
    say(engine, history, "new", "My dog is called Rex", author=Author.ASSISTANT, status=MessageStatus.INCOMPLETE)
    embed_pending(engine, embedder)
    assert all("Rex" not in f.content for f in ask(engine, indexes, embedder, history, "dog Rex"))


def test_odd_queries_and_an_empty_history(engine, indexes, embedder, history):
    nobody = user(engine, "nobody")
    assert ask(engine, indexes, embedder, nobody, "anything at all") == []
    assert ask(engine, indexes, embedder, history, "   ") == []
    assert ask(engine, indexes, embedder, history, "asdf qwer") == []  # nothing similar, nothing matching
    assert len(ask(engine, indexes, embedder, history, "x" * 100_000)) <= 8  # a huge one is answered, bounded
    huge = ask(engine, indexes, embedder, history, "teal " + "🎉" * 50_000)
    assert "teal" in huge[0].content
    say(engine, history, "jp", "日本語で猫の話をしました 🐱")
    embed_pending(engine, embedder)
    assert "🐱" in ask(engine, indexes, embedder, history, "日本語で猫の話")[0].content


def test_many_users_with_near_identical_texts_never_see_each_other(engine, embedder):
    indexes = UserIndexes(engine, model=embedder.model_name, dimension=lambda: embedder.dimension, capacity=4)
    rng = random.Random(7)
    people = [user(engine, f"user{i:02d}") for i in range(12)]
    codes = {}
    for person in people:
        codes[person.id] = f"{rng.randrange(1000, 9999)}"
        say(engine, person, f"t-{person.id}", f"My locker code is {codes[person.id]} and my bike is blue.")
        say(engine, person, f"t-{person.id}", "My locker code is secret, the bike is blue.")
    embed_pending(engine, embedder)
    mine = {p.id: set(read(engine, lambda s, p=p: [m.id for m in s.exec(
        store.select(store.Message).where(store.Message.user_id == p.id)).all()])) for p in people}
    for person in rng.sample(people, len(people)):  # random order exercises the LRU (capacity 4 < 12)
        for question in ("what is my locker code", "blue bike", codes[person.id]):
            found = ask(engine, indexes, embedder, person, question, k=20)
            assert found and {f.message_id for f in found} <= mine[person.id]
            assert all(codes[person.id] in f.content or "secret" in f.content for f in found)
    assert len(indexes.loaded()) <= 4


def test_deleting_a_user_leaves_no_rows_and_no_vectors(engine, indexes, embedder, history, tmp_path):
    other = user(engine, "other")
    say(engine, other, "theirs", "My sister Clara lives in Lisbon too.")
    embed_pending(engine, embedder)
    assert ask(engine, indexes, embedder, history, "Clara") and ask(engine, indexes, embedder, other, "Clara")
    assert indexes.loaded().get(history.id)  # its vectors are held in memory
    write(engine, lambda s: store.delete_user(s, user=s.get(store.User, history.id)))
    indexes.drop(history.id)
    with engine.connect() as conn:
        for table in ("message", "embedding", "thread", "step", "feedback"):
            clause = "user_id" if table in {"message", "embedding", "thread"} else None
            if clause:
                left = conn.execute(text(f"SELECT count(*) FROM {table} WHERE {clause} = :u"), {"u": history.id})
                assert left.scalar() == 0, table
        assert conn.execute(text('SELECT count(*) FROM "user" WHERE id = :u'), {"u": history.id}).scalar() == 0
        if engine.dialect.name == "sqlite":
            fts = conn.execute(text("SELECT count(*) FROM message_fts WHERE owner = :o"), {"o": f"u{history.id}"})
            assert fts.scalar() == 0
    assert history.id not in indexes.loaded() and indexes.loaded().get(history.id, 0) == 0
    assert list((tmp_path / "indexes").rglob(f"u{history.id}-*")) == []  # no index file either
    assert ask(engine, indexes, embedder, history, "Clara") == []
    assert "Lisbon" in ask(engine, indexes, embedder, other, "Clara")[0].content  # the other user is untouched


def test_corrupt_or_missing_vectors_are_rebuilt_not_crashed(engine, indexes, embedder, history):
    assert ask(engine, indexes, embedder, history, "cat")  # index loaded
    width = embedder.dimension * 4
    with engine.begin() as conn:
        conn.execute(text("UPDATE embedding SET vector = :v WHERE message_id IN "
                          "(SELECT message_id FROM embedding ORDER BY message_id LIMIT 2)"), {"v": b"broken"})
        conn.execute(text("DELETE FROM embedding WHERE message_id = "
                          "(SELECT max(message_id) FROM embedding)"))
    found = ask(engine, indexes, embedder, history, "my favourite colour")  # stale index is rebuilt, bad rows skipped
    assert "teal" in found[0].content  # the lexical side still finds the message without a vector
    assert count_pending(engine, model=embedder.model_name, width=width) == 3
    assert embed_pending(engine, embedder) == 3
    assert count_pending(engine, model=embedder.model_name, width=width) == 0
    assert ask(engine, indexes, embedder, history, "my favourite colour")[0].content.startswith("My favourite colour")


def test_vectors_of_another_model_are_never_mixed_in(engine, embedder, history):
    other_model = UserIndexes(engine, model="some-other-model", dimension=lambda: embedder.dimension)
    vector = embedder.encode_one("cat")
    assert other_model.search(history.id, vector, 5) == []  # no vectors for that model: nothing, not the old ones
    assert count_pending(engine, model="some-other-model", width=embedder.dimension * 4) == 8
    with engine.connect() as conn:
        models = set(conn.execute(text("SELECT DISTINCT model FROM embedding")).scalars())
    assert models == {embedder.model_name}


def test_an_index_sees_what_another_process_wrote(engine, indexes, embedder, history):
    assert "Pixel" in ask(engine, indexes, embedder, history, "cat")[0].content
    # Another process (same database, its own cache) adds a message and its vector.
    message = say(engine, history, "elsewhere", "Update: my cat Pixel now has a sibling cat named Byte.")
    write(engine, lambda s: s.add(Embedding(
        message_id=message.id, model=embedder.model_name, user_id=history.id, content_hash="x",
        vector=np.asarray(embedder.encode_one(message.content), dtype="<f4").tobytes())))
    assert any("Byte" in f.content for f in ask(engine, indexes, embedder, history, "cat sibling"))


def test_a_reply_is_found_by_the_words_of_the_question_it_answers(engine, indexes, embedder):
    ada = user(engine, "ada")
    say(engine, ada, "q", "Which city should I visit for the azulejo tiles?", step="q1")
    say(engine, ada, "q", "Lisbon, without a doubt.", author=Author.ASSISTANT, step="q2")
    query = RecallQuery(user_id=ada.id, text="azulejo", vector=None, authors=frozenset({Author.ASSISTANT}))
    (found,) = read(engine, lambda s: recall(s, indexes, query))
    assert found.content == "Lisbon, without a doubt."  # shown as itself, found through its context
    # Deleting the question also removes it from the reply's lexical context.
    write(engine, lambda s: store.delete_message(s, message=store.get_message(s, step_id="q1")))
    assert read(engine, lambda s: recall(s, indexes, query)) == []


def test_messages_deleted_together_leave_no_trace_in_the_lexical_context_of_those_that_stay(engine, indexes, embedder):
    """As one at a time (above), for the bulk delete an undone import uses."""
    ada = user(engine, "ada")
    first = say(engine, ada, "q", "Which city should I visit for the azulejo tiles?", step="b1")
    second = say(engine, ada, "q", "Porto has some, too: the station.", step="b2")
    say(engine, ada, "q", "Lisbon, without a doubt.", author=Author.ASSISTANT, step="b3")
    query = RecallQuery(user_id=ada.id, text="Porto station", vector=None, authors=frozenset({Author.ASSISTANT}))
    assert [f.content for f in read(engine, lambda s: recall(s, indexes, query))] == ["Lisbon, without a doubt."]
    write(engine, lambda s: store.delete_messages(s, thread_id="q", message_ids=[first.id, second.id]))
    assert read(engine, lambda s: recall(s, indexes, query)) == []
    assert [m.step_id for m in read(engine, lambda s: store.thread_messages(s, thread_id="q"))] == ["b3"]


def test_index_files_are_reused_when_current_and_rebuilt_when_damaged(engine, embedder, history, tmp_path):
    folder = tmp_path / "files"
    first = UserIndexes(engine, model=embedder.model_name, dimension=lambda: embedder.dimension, folder=folder)
    expected = ask(engine, first, embedder, history, "my cat")
    (path,) = list(folder.rglob(f"u{history.id}-*.faiss"))
    restarted = UserIndexes(engine, model=embedder.model_name, dimension=lambda: embedder.dimension, folder=folder)
    assert ask(engine, restarted, embedder, history, "my cat") == expected  # read from the file
    path.write_bytes(b"not a faiss index")
    damaged = UserIndexes(engine, model=embedder.model_name, dimension=lambda: embedder.dimension, folder=folder)
    assert ask(engine, damaged, embedder, history, "my cat") == expected  # rebuilt from SQL, file rewritten
    assert path.read_bytes() != b"not a faiss index"
    say(engine, history, "later", "Pixel learned to open doors.")
    embed_pending(engine, embedder)
    stale = UserIndexes(engine, model=embedder.model_name, dimension=lambda: embedder.dimension, folder=folder)
    assert "doors" in ask(engine, stale, embedder, history, "what did Pixel learn")[0].content  # stale file ignored
    assert len(list(folder.rglob(f"u{history.id}-*.faiss"))) == 1


def test_a_model_that_cannot_be_loaded_offline_says_so():
    from memory.embed import Embedder, EmbedderUnavailable

    broken = Embedder("/nowhere/no-such-model")
    with pytest.raises(EmbedderUnavailable, match="without network"):
        broken.load()
    assert not broken.ready


def test_one_users_index_work_never_waits_for_anothers(engine, embedder, indexes):
    """Before: one lock for every user's index, so one user's search or add held up everybody's."""
    import threading

    from memory.vectors import embed_pending

    def user_with_a_message(name: str, text: str) -> int:
        user = write(engine, lambda s: store.create_user(s, identifier=name, password="password1"))
        write(engine, lambda s: store.upsert_thread(s, thread_id=f"t-{name}", user_id=user.id))
        write(engine, lambda s: store.save_message(s, step_id=f"s-{name}", thread_id=f"t-{name}", user_id=user.id,
                                                   author=Author.USER, content=text))
        return user.id

    busy, other = user_with_a_message("busy", "I row on the river."), user_with_a_message("free", "I grow tomatoes.")
    embed_pending(engine, embedder)
    query = embedder.encode_one("tomatoes")
    indexes.search(busy, query, 1)
    indexes.search(other, query, 1)
    done = threading.Event()
    with indexes._cache[busy].lock:  # the busy user's index is mid-search or mid-add
        worker = threading.Thread(target=lambda: (indexes.search(other, query, 1), done.set()))
        worker.start()
        assert done.wait(10), "another user's search waited for this one"
    worker.join()


def test_a_trip_from_an_earlier_chat_is_recalled_when_asked_about_in_other_words(engine, indexes, embedder):
    """The "Kyoto" case: the question shares no word with the memory it needs, and single everyday
    words of it ("holiday", "loved") fill many unrelated messages. One shared word is no evidence."""
    mia = user(engine, "mia")
    say(engine, mia, "spring", "We finally did it: ten days in Kyoto in April, temples at dawn and tiny ramen bars.")
    say(engine, mia, "spring", "Ten days in Kyoto sounds wonderful!", author=Author.ASSISTANT)
    for i, line in enumerate([
        "The office holiday party is next Thursday and I still have no costume.",
        "I need to book my holiday days before the end of the month.",
        "My kids loved the film we saw on Saturday.",
        "Can you remind me to water the plants on Sunday?",
        "The holiday rota at work is a mess again.",
        "My neighbour loved the lemon cake recipe you gave me.",
        "Remind me to call the bank about the mortgage.",
        "Our school holiday starts in July this year.",
        "I loved how quiet the library was this morning.",
        "Is a holiday bonus taxed differently from my salary?",
    ]):
        say(engine, mia, f"later{i}", line)
    embed_pending(engine, embedder)
    found = ask(engine, indexes, embedder, mia, "Remind me what I loved about my holiday in Japan?", k=3)
    assert "Kyoto" in found[0].content
    # A question whose words the memory does share is still answered from the lexical side.
    found = ask(engine, indexes, embedder, mia, "ramen bars in Kyoto", k=3)
    assert "ramen" in found[0].content


def test_lexical_support_counts_the_terms_each_hit_contains_alike_on_both_backends(engine, indexes, embedder):
    from memory.retrieve import lexical_support

    zoe, other = user(engine, "zoe"), user(engine, "other")
    both = say(engine, zoe, "a", "Booking flights to Kyoto for the cherry blossoms.").id
    one = say(engine, zoe, "a", "The cherry pie was burnt.").id  # its context ("flights", "Kyoto") counts
    say(engine, zoe, "b", "Nothing to see here.")
    stranger = say(engine, other, "c", "Flights to Kyoto, cherry blossoms, all of it.").id
    none = say(engine, zoe, "b", "Still nothing.").id
    query = RecallQuery(user_id=zoe.id, text="Any cherry blossom flights?", vector=None)
    counts = read(engine, lambda s: lexical_support(s, query, [both, one, none, stranger]))
    assert counts == [3, 3, 0, 0]  # stemmed alike (blossom/blossoms, flights); another user's row counts nothing
    assert read(engine, lambda s: lexical_support(s, replace(query, text="the of"), [both])) == [0]
    assert read(engine, lambda s: lexical_support(s, query, [])) == []


PARITY_HISTORY = [
    (Author.USER, "I'm vegan, so no meat, fish, eggs or dairy for me."),
    (Author.ASSISTANT, "Noted: vegan, no animal products."),
    (Author.USER, "We spent ten days in Kyoto in April; the temples at dawn were the best part."),
    (Author.USER, "My sister Clara teaches piano in Lisbon."),
    (Author.ASSISTANT, "Lisbon sounds lovely for a pianist."),
    (Author.USER, "The office holiday party is on Thursday."),
    (Author.USER, "I avoid long flights; anything over six hours wrecks my back."),
    (Author.USER, "Friday I'm seeing the dentist at nine."),
    (Author.USER, "I'm learning Portuguese for the next visit to Clara."),
    (Author.USER, "Our cat Pixel knocked the plant off the shelf again."),
    (Author.ASSISTANT, "Pixel sounds like a handful!"),
    (Author.USER, "Any ideas for a birthday present for my dad? He likes gardening."),
    (Author.USER, "I run 5k every Sunday morning by the river."),
    (Author.USER, "Work has me on call every other weekend until March."),
]
PARITY_QUESTIONS = ["restaurant ideas for Friday night", "what was that trip to Japan like", "Clara piano Lisbon",
                    "how long can I sit on a plane", "what should I get my father", "Pixel", "my weekend plans",
                    "is dairy ok for me", "running by the river on Sunday"]


@pytest.mark.postgres
def test_sqlite_and_postgresql_recall_the_same_fixture_alike(postgres_admin_url, tmp_path, embedder):
    """Their lexical scores differ (BM25 against ts_rank_cd), so what is compared is what a reply
    would be given: the same memories, best first."""
    from memory.db import make_engine, migrate
    from tests.pgserver import create_database, drop_database

    if postgres_admin_url is None:
        pytest.fail("PostgreSQL binaries not found (apt-get install postgresql)")
    pg_url = create_database(postgres_admin_url)
    recalled = {}
    try:
        for name, url in (("sqlite", f"sqlite:///{tmp_path / 'parity.db'}"), ("postgres", pg_url)):
            engine = make_engine(url)
            migrate(engine)
            ann = user(engine, "ann")
            for i, (author, line) in enumerate(PARITY_HISTORY):
                say(engine, ann, f"t{i // 3}", line, author=author, step=f"s{i}")
            embed_pending(engine, embedder)
            indexes = UserIndexes(engine, model=embedder.model_name, dimension=lambda: embedder.dimension)
            recalled[name] = [[f.content for f in ask(engine, indexes, embedder, ann, q, k=3)] for q in PARITY_QUESTIONS]
            engine.dispose()
    finally:
        drop_database(postgres_admin_url, pg_url)
    for question, on_sqlite, on_postgres in zip(PARITY_QUESTIONS, recalled["sqlite"], recalled["postgres"], strict=True):
        assert on_sqlite and on_sqlite[0] == on_postgres[0], question
        assert set(on_sqlite) == set(on_postgres), question


def test_a_reply_that_restates_a_message_never_goes_before_the_persons_own_words(engine, indexes, embedder):
    leo = user(engine, "leo")
    said = say(engine, leo, "food", "I'm lactose intolerant, dairy makes me properly ill.").id
    echo = say(engine, leo, "food", "Noted: no milk, cheese, butter or cream for you.", author=Author.ASSISTANT).id
    say(engine, leo, "other", "The party is at Sam's place on Saturday.")
    say(engine, leo, "other", "Saturday at Sam's, got it.", author=Author.ASSISTANT)
    embed_pending(engine, embedder)
    found = [f.message_id for f in ask(engine, indexes, embedder, leo, "Which cheese should I bring along?", k=4)]
    assert found.index(said) < found.index(echo)
    # Even when the question's words are the reply's, the person's own words come first and the reply follows.
    assert [f.message_id for f in ask(engine, indexes, embedder, leo, "milk cheese butter cream", k=2)] == [said, echo]
