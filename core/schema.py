"""Column names every layer agrees on: the customer key, the label and the as-of date."""

CUSTOMER_ID = "customer_id"
LABEL = "label"
AS_OF = "as_of"
