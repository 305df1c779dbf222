"""The end of a test run says which groups of tests were skipped and why."""

import subprocess
import sys
import textwrap


def test_a_run_ends_with_the_groups_it_skipped_and_why(tmp_path):
    (tmp_path / "conftest.py").write_text("from tests.skip_summary import pytest_terminal_summary  # noqa: F401\n")
    (tmp_path / "test_extra.py").write_text(textwrap.dedent("""
        import pytest
        pytest.importorskip("adbench_no_such_module", reason="the x extra is not installed")
        def test_one(): pass
        def test_two(): pass
    """))
    (tmp_path / "test_gpu.py").write_text(textwrap.dedent("""
        import pytest
        @pytest.mark.skipif(True, reason="needs a CUDA GPU")
        def test_gpu(): pass
        def test_cpu():
            pytest.skip("needs a CUDA GPU")
        def test_runs(): pass
    """))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout
    summary = run.stdout[run.stdout.index("skipped test groups"):].splitlines()[1:3]
    assert summary == ["2 skipped: needs a CUDA GPU (test_gpu.py)",
                       "1 skipped: the x extra is not installed (test_extra.py)"]  # a module skipped whole: 1
    (tmp_path / "test_extra.py").unlink()
    (tmp_path / "test_gpu.py").write_text("def test_runs(): pass\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)], cwd=tmp_path,
                         capture_output=True, text=True)
    assert "skipped test groups" in run.stdout and "none: every selected test ran" in run.stdout
