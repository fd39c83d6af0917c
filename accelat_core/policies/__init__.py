"""One file per policy. Import from :mod:`accelat_core`, not from here."""
