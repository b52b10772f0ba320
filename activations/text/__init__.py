"""Example text: the documents a record's examples point into, read as the records were made
from them, and each example's tokens and values around its max."""
