"""Comparing a stand-in's answer with the recorded answer of the real server: same keys at every
level, same JSON types (numbers interchangeable, null matching anything)."""


def same_shape(recorded, served, path="body"):
    if isinstance(recorded, dict):
        assert isinstance(served, dict), f"{path}: {type(served).__name__} instead of an object"
        assert set(recorded) == set(served), f"{path}: keys differ: {set(recorded) ^ set(served)}"
        for key in recorded:
            same_shape(recorded[key], served[key], f"{path}.{key}")
    elif isinstance(recorded, list):
        assert isinstance(served, list), f"{path}: {type(served).__name__} instead of a list"
        if recorded and served:
            same_shape(recorded[0], served[0], f"{path}[0]")
    elif recorded is not None and served is not None:
        if isinstance(recorded, (int, float)) and isinstance(served, (int, float)) and not isinstance(recorded, bool):
            return
        assert type(recorded) is type(served), f"{path}: {type(served).__name__} instead of {type(recorded).__name__}"
