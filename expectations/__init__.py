"""Great Expectations suites for catalog-intel outputs."""
