"""Reports: JSON results, self-contained HTML; JUnit properties come from the items."""
