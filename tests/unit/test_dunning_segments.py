"""Which live segments take every invoice: when one set of interest terms does, the run's
interest UPDATE needs no look at the debtors (`backend.dunning._cover_everything`)."""

from __future__ import annotations

from backend.dunning import _cover_everything
from simulator.policy import Segment


def test_segments_that_take_every_invoice():
    assert _cover_everything([Segment()])
    assert _cover_everything([Segment("b2b"), Segment("b2c")])
    assert _cover_everything([Segment("b2c", 0, 99_999), Segment("b2c", 100_000), Segment("b2b")])
    assert _cover_everything([Segment(None, 0, 500), Segment(None, 400)])


def test_segments_that_leave_some_invoices_out():
    assert not _cover_everything([])
    assert not _cover_everything([Segment("b2c")])
    assert not _cover_everything(
        [Segment("b2c", 0, 99_999), Segment("b2c", 100_001), Segment("b2b")]
    )
    assert not _cover_everything([Segment(None, 1)])
    assert not _cover_everything([Segment(None, 0, 10**9)])
