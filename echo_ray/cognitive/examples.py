"""One small, valid request per processing type (the `input` of POST /v1/<type>).

What `echo-ray calibrate` times, what the load test sends, and what a worker replica runs
once in its constructor (`CognitiveProcessor.warm_up`) so that it takes traffic warm."""

from __future__ import annotations

SERIES = [round(0.5 + 0.4 * ((k * 7) % 13 - 6) / 6.0, 3) for k in range(30)]
TRAJ = [[0.1, 0.2], [0.2, 0.1], [0.3, 0.3]]

EXAMPLE_REQUESTS: dict[str, dict] = {
    "reasoning": {"series": SERIES, "horizon": 4},
    "memory": {"op": "store", "items": [{"text": "deep tree echo"}, {"text": "echo state"}]},
    "grammar": {"op": "train", "strings": ["abab", "abba", "aabb", "baba", "bbaa", "abab"]},
    "agent_evaluation": {
        "examples": [{"trajectory": TRAJ, "scores": {"speed": float(k)}} for k in range(4)],
        "agents": [{"id": "a", "trajectory": TRAJ}, {"id": "b", "trajectory": TRAJ[::-1]}]},
    "multi_modal": {"op": "embed", "samples": [{"x": {"series": [[0.1], [0.4], [0.9]]},
                                                "y": {"text": "echo"}}]},
    "membrane_evolution": {"steps": 5},
}
