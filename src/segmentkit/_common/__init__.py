"""Helpers every stage may use: files written atomically, spreadsheet-safe CSV, nested
documents, parameter validation and run-length kernels. Imports nothing above ``errors``."""
