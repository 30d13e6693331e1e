"""scripts/mutations.py stays applicable: every mutation's old text stands exactly once in its file
(after a refactor the script would stop on it; this says so in the suite, before anyone runs the
hour-long table)."""

from __future__ import annotations

import pytest

from scripts.mutations import MUTATIONS, ROOT


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_each_mutation_still_applies_to_the_code_it_names(mutation):
    text = (ROOT / mutation.file).read_text()
    assert text.count(mutation.old) == 1, f"{mutation.file}: edit {mutation.name} in MUTATIONS"
    assert mutation.new != mutation.old
