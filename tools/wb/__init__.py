"""The kernel workbench (tools/workbench)."""
