"""`clpips run` is quiet: no kernel transport warning, no "KeyboardInterrupt caught in kernel".

Both came from the kernel (its stderr is the terminal's): ipykernel warns when its sockets are not
encrypted, and jupyter_client interrupted every kernel before shutting it down
(clpips.apps.notebook_runner._kernel_manager_class fixes both at their cause).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

NOTEBOOK = '''# %% tags=["parameters"]
x = 1

# %%
import ipywidgets
ipywidgets.IntSlider(value=x)

# %%
print("done", x)
'''


def test_a_notebook_run_prints_only_the_output_path(tmp_path: Path):
    source = tmp_path / "11_quiet.py"
    source.write_text(NOTEBOOK, encoding="utf-8")
    for attempt in range(3):                 # the interrupt message was a race: run a few times
        proc = subprocess.run([sys.executable, "-m", "clpips", "run", str(source), "--out", str(tmp_path / "out"),
                               "-p", "x", str(attempt)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        noise = proc.stderr + proc.stdout
        assert "without encryption" not in noise and "KeyboardInterrupt" not in noise, noise
        assert proc.stderr.strip() == "", proc.stderr
        assert proc.stdout.strip().endswith("11_quiet.ipynb")
