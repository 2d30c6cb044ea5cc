"""Visitors' data at rest and in answers: encrypted under the shared key, masked."""

from __future__ import annotations

import pytest

from servicekit import pii


def test_a_value_reads_back_under_the_same_key_and_not_under_another(monkeypatch):
    monkeypatch.setenv("NIGHTTALK_PII_KEY", "the key of this city")
    stored = pii.encrypt("13905961234")
    assert "13905961234" not in stored
    assert pii.decrypt(stored) == "13905961234"
    monkeypatch.setenv("NIGHTTALK_PII_KEY", "another key")
    assert pii.decrypt(stored) is None  # unreadable, not an error
    assert pii.encrypt(None) is None and pii.decrypt(None) is None


@pytest.mark.parametrize(
    ("mask", "value", "shown"),
    [
        (pii.mask_name, "林河清", "林*清"),
        (pii.mask_name, "林河", "林*"),
        (pii.mask_phone, "13905961234", "139****1234"),
        (pii.mask_phone, "110", "***"),
        # A landline without its area code: the last four at most (296*2345 showed seven).
        (pii.mask_phone, "29612345", "****2345"),
        (pii.mask_phone, "0596123456", "******3456"),
        (pii.mask_phone, "059612345678", "059*****5678"),
        (pii.mask_address, "郭坑镇中学旁", "郭坑***"),
        (pii.mask_address, None, None),
    ],
)
def test_masks_show_enough_to_recognise_not_to_reach(mask, value, shown):
    assert mask(value) == shown
