"""`make book`'s chapter lines: one per chapter, in the chapters' order, with its time, however the two lanes
finish; a failed chapter shows its error and the end of its traceback (issue #26, item 7).

The lanes' ``clpips run`` processes are replaced by stand-ins that finish after set delays (and write a set
log), so the order in which chapters finish is known and the test takes about a second.
"""
from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from clpips.apps import notebook_runner as nr

HEADER = '# %% tags=["parameters"]\nx = 1\n'
#: a real failed chapter's log (clpips run's output when cell In[2] raised), as a lane writes it
FAILED_LOG = """clpips run: notebook 01_a failed in cell In[2]: ValueError: bad value 1
---------------------------------------------------------------------------
ValueError                                Traceback (most recent call last)
Cell In[2], line 4
      1 def explode(v):
      2     raise ValueError(f"bad value {v}")
      3 
----> 4 explode(x)

ValueError: bad value 1
the executed notebook, with the error, is out/01_a.ipynb
"""


class StandIn:
    """A lane's ``clpips run`` process: finishes ``DELAYS[stem]`` seconds after it starts, with ``CODES[stem]``."""

    DELAYS: dict[str, float] = {}
    CODES: dict[str, int] = {}
    LOGS: dict[str, str] = {}

    def __init__(self, command, stdout, **_) -> None:
        self.stem = Path(command[command.index("run") + 1]).stem
        stdout.write(self.LOGS.get(self.stem, "").encode())
        self.started, self.returncode = time.perf_counter(), None

    def poll(self):
        if time.perf_counter() - self.started >= self.DELAYS[self.stem]:
            self.returncode = self.CODES.get(self.stem, 0)
        return self.returncode


@pytest.fixture
def book(tmp_path, monkeypatch):
    for stem in ("01_a", "02_b", "03_c"):
        (tmp_path / "notebooks").mkdir(exist_ok=True)
        (tmp_path / "notebooks" / f"{stem}.py").write_text(HEADER)
    monkeypatch.setattr(nr, "AFTER", {})
    monkeypatch.setattr(nr, "LONGEST", ())
    monkeypatch.setattr(nr, "LAST", ())
    monkeypatch.setattr(subprocess, "Popen", StandIn)
    monkeypatch.setattr(StandIn, "LOGS", {})
    monkeypatch.setattr(StandIn, "CODES", {})
    return tmp_path


def test_chapter_lines_come_in_the_chapters_order_when_the_lanes_finish_out_of_order(book, monkeypatch):
    # two lanes: 01 and 02 start; 02 ends first, then 03 (started when 02 ended), then 01
    monkeypatch.setattr(StandIn, "DELAYS", {"01_a": 1.2, "02_b": 0.0, "03_c": 0.3})
    said = []
    params = {stem: {"x": 5} for stem in ("01_a", "02_b", "03_c")}
    nr.run_all(book / "out", params, notebooks_dir=book / "notebooks", jobs=2,
               log=lambda line: said.append((time.perf_counter(), line)))
    lines = [line for _, line in said]
    assert [line.split()[1] for line in lines] == ["01_a", "02_b", "03_c"], lines
    assert [line.split()[0] for line in lines] == ["1/3", "2/3", "3/3"]
    seconds = {line.split()[1]: float(re.search(r"([\d.]+) s\b", line).group(1)) for line in lines}
    assert seconds["01_a"] >= 1.2 and seconds["02_b"] < 1.0 and seconds["03_c"] >= 0.3
    assert all(line.endswith("x=5") for line in lines)          # the parameters a chapter ran with
    # nothing is said before chapter 01 has finished, so its line is first and all come together
    assert said[-1][0] - said[0][0] < 0.1


def test_a_failed_chapter_shows_its_error_and_where_and_the_others_still_report(book, monkeypatch):
    monkeypatch.setattr(StandIn, "DELAYS", {"01_a": 0.3, "02_b": 0.6, "03_c": 0.0})
    monkeypatch.setattr(StandIn, "CODES", {"01_a": 1})
    monkeypatch.setattr(StandIn, "LOGS", {"01_a": FAILED_LOG})
    said = []
    with pytest.raises(nr.NotebookError) as caught:
        nr.run_all(book / "out", {}, notebooks_dir=book / "notebooks", jobs=2, log=said.append)
    message = str(caught.value)
    assert message.splitlines()[0] == "01_a failed: notebook 01_a failed in cell In[2]: ValueError: bad value 1"
    assert "Cell In[2], line 4" in message and "----> 4 explode(x)" in message   # the cell and its line
    assert message.splitlines()[-1].startswith("(its log: ") and message.splitlines()[-1].endswith("01_a.log)")
    assert said[0].split()[:2] == ["1/3", "01_a"] and "failed after" in said[0]
    assert [line.split()[1] for line in said] == ["01_a", "02_b"]       # 03 never started: no line


def test_progress_lines_wait_for_every_earlier_chapter():
    """The lines' order alone (also that of one lane, BOOK_JOBS=1): a chapter's line waits for those before it."""
    nr.ProgressLines(["01_a", "02_b"], {}, None).finish("02_b", 1.0)      # no log: nothing said, nothing raised
    said = []
    progress = nr.ProgressLines(["01_a", "02_b", "03_c"], {"02_b": {"x": 2}}, said.append)
    progress.finish("02_b", 2.3)
    assert said == []                               # 01 has not finished
    progress.finish("01_a", 10.0)
    assert said == ["1/3 01_a    10.0 s", "2/3 02_b     2.3 s x=2"]
    progress.flush()                                # 03 never ran: no line
    assert len(said) == 2
