"""The qualified invoice (適格請求書) as a PDF, with an embedded Japanese font (Noto Sans JP)."""

from __future__ import annotations

from fpdf import FPDF
from pylopdf_fonts_jp import sans_path

from billing_svc.domain import tax
from billing_svc.issuer import Issuer
from billing_svc.views import InvoiceView

FONT = "NotoSansJP"


def yen(amount: int) -> str:
    return f"¥{amount:,}" if amount >= 0 else f"-¥{-amount:,}"


def render_invoice(invoice: InvoiceView, issuer: Issuer) -> bytes:
    """Every item a qualified invoice needs: issuer and registration number, date, period,
    items, amounts and tax per rate, total and the recipient."""
    pdf = FPDF(format="A4")
    pdf.set_title(f"適格請求書 {invoice.period}")
    pdf.set_author(issuer.name)
    pdf.add_font(FONT, fname=str(sans_path()))
    pdf.add_page()
    pdf.set_font(FONT, size=20)
    pdf.cell(0, 12, "適格請求書 (請求書)", new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.set_font(FONT, size=11)
    pdf.cell(0, 8, f"{invoice.recipient_name} 御中", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    for label, value in (
        ("発行者", issuer.name),
        ("登録番号", issuer.registration_number),
        ("請求書番号", invoice.id),
        ("発行日", invoice.issued_on.isoformat()),
        ("対象期間", f"{invoice.period} (利用月)"),
        ("お支払期限", invoice.due_date.isoformat()),
    ):
        pdf.cell(35, 7, label)
        pdf.cell(0, 7, value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font(FONT, size=10)
    pdf.cell(130, 8, "品目", border=1)
    pdf.cell(0, 8, "金額 (税抜)", border=1, new_x="LMARGIN", new_y="NEXT", align="R")
    for line in invoice.lines:
        mark = "" if line.taxable else " ※不課税"
        pdf.cell(130, 8, f"{line.description}{mark}", border=1)
        pdf.cell(0, 8, yen(line.amount), border=1, new_x="LMARGIN", new_y="NEXT", align="R")
    pdf.ln(4)
    pdf.set_font(FONT, size=11)
    rows = [
        (f"{tax.RATE_PERCENT}%対象 (税抜)", yen(invoice.taxable)),
        (f"消費税 ({tax.RATE_PERCENT}%)", yen(invoice.tax)),
    ]
    if invoice.non_taxable:
        rows.append(("不課税 (延滞利息)", yen(invoice.non_taxable)))
    if invoice.credit_brought_forward:
        rows.append(("前回からの繰越クレジット", yen(-invoice.credit_brought_forward)))
    if invoice.credit_carried_forward:
        rows.append(("次回へ繰り越すクレジット", yen(invoice.credit_carried_forward)))
    rows.append(("ご請求金額 (税込)", yen(invoice.total)))
    for label, value in rows:
        pdf.cell(130, 8, label, border=1)
        pdf.cell(0, 8, value, border=1, new_x="LMARGIN", new_y="NEXT", align="R")
    pdf.ln(4)
    pdf.set_font(FONT, size=8)
    pdf.multi_cell(
        0, 5, "消費税は請求書ごとに税率別の合計額から算出し、1円未満を切り捨てています。"
    )
    return bytes(pdf.output())
