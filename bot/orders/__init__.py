"""Orders answered from the shop's own system (the sources live in `commerce/`).

- `stage.py`: the pipeline stage: recognise an order question, ask for the number and for proof,
  look the order up, reply or hand over;
- `store.py`: the lookup record (also the rate limit) and each conversation's order in progress;
- `replies.py`: the order told through localized templates, every fact from the record;
- `rules.py`: the merchant's rules that send an order to a person (stuck parcel, not received, changes);
- `connect.py`: the configured source behind the cache, timeout and circuit breaker.
"""
