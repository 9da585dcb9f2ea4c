"""The report states a grid's compute both ways when cells shared a teacher-output cache, and nothing otherwise."""
import pandas as pd

from suite.report.compute import compute_lines


def test_compute_both_ways_only_where_a_cache_was_used():
    plain = pd.DataFrame({"flops.total": [10.0, 20.0], "flops.teacher_logits": [4.0, 4.0]})
    nums: dict = {}
    assert compute_lines(plain, nums) == [] and nums == {}
    cached = pd.DataFrame({"flops.total": [10.0, 6.0, 6.0, 3.0],         # the last: a supervised cell
                           "flops.teacher_logits": [4.0, 0.0, 0.0, 0.0],
                           "flops.teacher_logits_per_cell": [4.0, 4.0, 4.0, None],
                           "teacher_cache.mode": ["write", "hit", "hit", None]})
    lines = compute_lines(cached, nums)
    assert nums["compute"]["flops_as_run"] == 25.0 and nums["compute"]["flops_teacher_per_cell"] == 33.0
    assert nums["compute"]["cache_modes"] == {"write": 1, "hit": 2} and nums["compute"]["cached_cells"] == 3
    assert "25 FLOPs as run" in lines[0] and "33 FLOPs" in lines[0] and "1.32x" in lines[0]
