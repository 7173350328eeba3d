"""[stats] viewers: validated at load, and the safety representative by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from intake.service.config import validate_config
from intake.web.access import viewer_for
from storage.errors import SettingsError

BASE = {"intake": {"addresses": ["chikanemail@kommune.example"]},
        "plan": {"safety_rep": "AMR@kommune.example", "admins": ["it@kommune.example"]}}


def test_the_safety_representative_reads_the_statistics_when_no_viewers_are_named() -> None:
    config = validate_config(dict(BASE), source="(test)", base_dir=Path.cwd())
    assert viewer_for(config, "amr@kommune.example").is_stats_viewer
    assert viewer_for(config, "it@kommune.example").may_read_statistics
    assert not viewer_for(config, "leder@kommune.example").may_read_statistics


def test_named_viewers_replace_the_default_and_must_be_addresses() -> None:
    config = validate_config({**BASE, "stats": {"viewers": ["Gruppe@kommune.example"]}},
                             source="(test)", base_dir=Path.cwd())
    assert viewer_for(config, "gruppe@kommune.example").is_stats_viewer
    assert not viewer_for(config, "amr@kommune.example").is_stats_viewer
    with pytest.raises(SettingsError, match=r"stats\.viewers"):
        validate_config({**BASE, "stats": {"viewers": ["not an address"]}}, source="(test)",
                        base_dir=Path.cwd())
    with pytest.raises(SettingsError, match="unknown key"):
        validate_config({**BASE, "stats": {"readers": []}}, source="(test)",
                        base_dir=Path.cwd())
