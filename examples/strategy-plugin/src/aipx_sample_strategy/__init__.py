"""A sample AIPX strategy plug-in (the template for a strategy of your own)."""
