"""Grounding: every claim the copy makes must be backed by a known attribute or a catalog fact.

One checker, used by the pipeline's copy gate (copywriter.describe(check=...)) and by
`catalog-intel copy-quality`, split by role: :mod:`.terms` (what words name an attribute value),
:mod:`.claims` (what the copy asserts that nothing backs), :mod:`.form` (copy that is not well
formed) and :mod:`.gate` (the pipeline's gate: feedback and repair).
"""

from catalog_intel.copywriting.grounding.claims import (CLAIM_KINDS, Claim, claims, contradictions, facts_text)
from catalog_intel.copywriting.grounding.form import FORM_KINDS, form_problems, instruction_runs, norm_text
from catalog_intel.copywriting.grounding.gate import (CopyGate, Rebuilt, copy_check, feedback, repair,
                                                      repair_until_clean)
from catalog_intel.copywriting.grounding.terms import Terms, TermSet, build_terms

__all__ = ["CLAIM_KINDS", "FORM_KINDS", "Claim", "CopyGate", "Rebuilt", "TermSet", "Terms", "build_terms", "claims",
           "contradictions", "copy_check", "facts_text", "feedback", "form_problems", "instruction_runs", "norm_text",
           "repair", "repair_until_clean"]
