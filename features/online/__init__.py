"""The online feature store: every customer's latest feature vector, one read per customer.

A small interface (``interface``: ``OnlineStore`` to load and publish versions, ``OnlineReader``
to serve), the vector encoding (``codec``) and a Redis implementation (``redis_layout``,
``redis_writer``, ``redis_reader`` on the ``pipelined_redis`` client); ``materialize`` loads a
snapshot into it with Ray Data. Layout under the namespace ``ns`` (``churn:fv`` by default)::

    {ns}:live             id of the live version: the one pointer readers follow
    {ns}:previous         id of the version before it, kept for rollback
    {ns}:seq              counter numbering the versions
    {ns}:meta:{v}         hash: schema_hash, features (FeatureSet JSON), rows, source, state, created_at
    {ns}:count:{v}        rows the server confirmed for version v
    {ns}:{v}:{customer}   4-byte schema tag + the features as little-endian float32, FeatureSet order

A vector is 4 + 4 x features bytes (244 for 60 features): a packed vector per customer is read with
one GET (one MGET for a batch) and decoded with one ``np.frombuffer``. Its tag (the first bytes of
the FeatureSet's ``schema_hash``) is checked on every read, so a vector is never decoded with a
layout it was not written with.

A load writes a new version's keys next to the live ones, checks that the server holds all of
them, then flips ``live`` (and ``previous``) in one MULTI/EXEC; a load that fails before the flip
leaves the live version untouched and its keys are removed. Only the live and the previous
version are kept. Readers cache the pointer for ``pointer_ttl_s`` and re-read it on a miss; a batch
is always read from one version, never a mix.
"""

