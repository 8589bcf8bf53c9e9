"""The retention list: score the whole customer base and rank whom to call."""
