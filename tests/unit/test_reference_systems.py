"""The reference systems of evals.systems: constant choice, the blind training prior, per-task composites, a
predictions file made elsewhere."""
import pytest

from evals.contracts import MCQA, SUMMARIZATION, Sample
from evals.systems import ConstantChoice, FromPredictions, PerTask, TrainPrior


class _Bench:
    def __init__(self, task, paragraphs=()):
        self.task, self.name, self._paragraphs = task, "b", list(paragraphs)

    def train_paragraphs(self):
        return self._paragraphs


def qa(uid):
    return Sample(uid=uid, benchmark="b", task=MCQA, video=None, question="q", options=("a", "b", "c"), answer=1)


def summ(uid):
    return Sample(uid=uid, benchmark="b", task=SUMMARIZATION, video=None, references=("x.",))


def test_train_prior_writes_the_most_frequent_sentences_in_order():
    tp = TrainPrior()
    tp.prepare(_Bench(SUMMARIZATION, [["A red square appears.", "It spins."], ["A red square appears.", "It leaves."],
                                      ["A red square appears.", " It spins.", "It leaves."]]))
    (p,) = tp.predict([summ("s1")])
    assert p.text == "A red square appears. It spins."        # joined as references are: one space, nothing added
    other = _Bench(SUMMARIZATION, [["crack the eggs", "whisk them"]])
    other.name = "other"
    tp.prepare(other)                                           # a second benchmark: its own prior, not this one
    assert next(iter(tp.predict([summ("s1")]))).text == "A red square appears. It spins."
    # sentences without final punctuation (YouCook2) stay sentences: nothing is split or added
    tp.prepare(_Bench(SUMMARIZATION, [["crack the eggs", "whisk them"], ["crack the eggs", "add salt etc"]]))
    assert next(iter(tp.predict([summ("s1")]))).text == "crack the eggs whisk them"
    with pytest.raises(RuntimeError, match="prepare must run for benchmark 'b'"):
        next(iter(TrainPrior().predict([summ("s1")])))
    with pytest.raises(ValueError, match="training references"):
        TrainPrior().prepare(_Bench(SUMMARIZATION))


def test_per_task_dispatches_each_item_to_its_tasks_system():
    prior = {"_target_": "evals.systems.TrainPrior"}
    row = PerTask({SUMMARIZATION: prior, MCQA: ConstantChoice(index=2)}, name="row")
    assert row.tasks == {SUMMARIZATION, MCQA} and row.by_task[SUMMARIZATION].name == "row"
    summarizer, cfg = row.for_task(SUMMARIZATION)           # the runner prepares the one that runs
    assert cfg == prior and row.for_task(MCQA)[1] is None
    summarizer.prepare(_Bench(SUMMARIZATION, [["One thing happens."]]), [summ("s1")])
    preds = {p.uid: p for p in row.predict([qa("q1"), summ("s1"), qa("q2")])}
    assert preds["q1"].choice == 2 and preds["q2"].choice == 2 and preds["s1"].text == "One thing happens."
    with pytest.raises(ValueError, match="does not support"):
        PerTask({MCQA: prior})
    assert not summarizer.needs_video and not row.for_task(MCQA)[0].needs_video


def test_constant_choice_index_is_checked_before_the_first_item():
    from evals.contracts import ConfigError

    c = ConstantChoice(name="last", index=4)
    with pytest.raises(ConfigError, match=r"systems.last.index=4 is not an option of 2 questions \(e.g. 'q1' has 3"):
        c.prepare(_Bench(MCQA), [qa("q1"), qa("q2")])
    ConstantChoice(index=2).prepare(_Bench(MCQA), [qa("q1")])
    assert not c.needs_video and c.identity() == {"rule": "constant choice", "index": 4}


@pytest.mark.parametrize("lines, message", [
    ('{"uid": "q1"}', "line 1: needs a `text` or a `choice`"),
    ('{"uid": "q1", "choice": "B"}', "line 1: key 'choice' has type str"),
    ('{"uid": "q1", "choice": true}', "line 1: key 'choice' has type bool"),
    ('{"uid": "q1", "text": "A"}\n{"uid": "q1", "text": "B"}', "line 2: uid 'q1' again"),
    ('{"text": "A"}', "line 1: missing key 'uid'"),
])
def test_from_predictions_refuses_a_malformed_file_naming_the_line(tmp_path, lines, message):
    from evals.benchmarks.base import AnnotationError

    f = tmp_path / "p.jsonl"
    f.write_text(lines + "\n")
    with pytest.raises(AnnotationError, match=message):
        FromPredictions(str(f)).prepare(_Bench(MCQA), [qa("q1")])


def test_from_predictions_reads_texts_and_choices_and_fails_what_it_lacks(tmp_path):
    from evals.contracts import ConfigError

    f = tmp_path / "p.jsonl"
    f.write_text('{"uid": "q1", "choice": 2}\n{"uid": "q2", "text": "Answer: A"}\n{"uid": "q3", "choice": 3}\n'
                 '{"uid": 5, "text": "a summary"}\n')
    fp = FromPredictions(str(f), name="theirs")
    fp.prepare(_Bench(MCQA), [qa("q1"), qa("zz")])
    got = {p.uid: p for p in fp.predict([qa("q1"), qa("q2"), qa("q3"), qa("q4"), summ("5")])}
    assert (got["q1"].choice, got["q1"].text) == (2, None) and got["q2"].text == "Answer: A"   # parsed by the runner
    assert "not an option index (0..2)" in got["q3"].failure and "no prediction in" in got["q4"].failure
    assert got["5"].text == "a summary" and got["5"].choice is None
    assert fp.identity()["file"] == "p.jsonl" and len(fp.identity()["sha1"]) == 40
    with pytest.raises(ConfigError, match="no prediction for any of the 1 items of b"):
        fp.prepare(_Bench(MCQA), [qa("other")])
    with pytest.raises(ValueError, match="tasks: unknown \\['retrieval'\\]"):
        FromPredictions(str(f), tasks=["retrieval"])
