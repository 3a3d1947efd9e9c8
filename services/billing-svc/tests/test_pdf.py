"""The qualified-invoice PDF: every required item, in Japanese glyphs that really render."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pypdfium2
import pytest
from pypdf import PdfReader

from billing_svc.application import Billing
from billing_svc.issuer import InvalidRegistrationNumberError, Issuer

from .conftest import ISSUER
from .stories import an_active_contract


def an_invoice_pdf() -> bytes:
    billing = Billing(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, issuer=ISSUER)
    an_active_contract(billing, start=date(2026, 5, 16))
    [invoice_id] = billing.run_billing("2026-05", issued_on=date(2026, 6, 1)).invoice_ids
    return billing.invoice_pdf(invoice_id)


def text_of(pdf: bytes) -> str:
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    # pypdf reads fpdf2's two-byte Identity-H codes with a NUL before each character
    # (pdfium reads the same text layer cleanly; see the next test).
    return "".join(text.replace("\x00", "").split())


def test_the_text_layer_reads_back_cleanly_in_pdfium() -> None:
    page = pypdfium2.PdfDocument(an_invoice_pdf())[0]
    text = page.get_textpage().get_text_range()
    assert "適格請求書" in text
    assert "株式会社テスト 御中" in text


def test_the_invoice_pdf_carries_every_item_a_qualified_invoice_needs() -> None:
    text = text_of(an_invoice_pdf())
    for needed in (
        "適格請求書",
        "セコム株式会社",  # issuer
        "T7010001008844",  # registration number
        "2026-06-01",  # issue date
        "2026-05",  # period
        "日割利用料",  # item
        "¥5,263",  # amount
        "10%対象",
        "消費税(10%)",
        "¥526",  # tax at 10%
        "¥5,789",  # total
        "株式会社テスト御中",  # recipient
    ):
        assert needed in text, needed


def test_the_japanese_title_is_rendered_with_ink(tmp_path: Path) -> None:
    pdf = an_invoice_pdf()
    page = pypdfium2.PdfDocument(pdf)[0]
    image = page.render(scale=2).to_pil().convert("L")
    image.save(tmp_path / "invoice.png")
    width, _ = image.size
    # The centred title sits in the top band (12 mm from the 10 mm margin, at 2× scale).
    title = image.crop((int(width * 0.3), 50, int(width * 0.7), 140))
    dark = sum(1 for pixel in title.get_flattened_data() if pixel < 128)
    assert dark > 500
    blank = image.crop(
        (int(width * 0.3), image.size[1] - 200, int(width * 0.7), image.size[1] - 100)
    )
    assert all(pixel > 250 for pixel in blank.get_flattened_data())


def test_a_registration_number_with_a_wrong_check_digit_is_refused() -> None:
    with pytest.raises(InvalidRegistrationNumberError):
        Issuer("セコム株式会社", "T1010001008844")


def test_a_registration_number_needs_the_t_prefix() -> None:
    with pytest.raises(InvalidRegistrationNumberError):
        Issuer("セコム株式会社", "7010001008844")
