"""The task catalogue: one module per paper, prompts in ``templates/`` with citations."""

__all__: list[str] = []
