from media.program import program_for


def test_each_site_sees_the_host_and_the_speaker_never_itself():
    present = ["jl", "cc", "sp", "ly"]
    assert program_for("cc", "jl", present, "sp").video == ("jl", "sp")
    assert program_for("cc", "jl", present, "sp").audio == "sp"
    # the host sees the speaker and the next most recent arrival
    assert program_for("jl", "jl", present, "sp").video == ("sp", "ly")
    # the speaker sees the host and the most recent other arrival
    assert program_for("sp", "jl", present, "sp").video == ("jl", "ly")


def test_without_a_speaker_the_latest_arrival_stands_in_and_empty_slots_stay_empty():
    assert program_for("cc", "jl", ["jl", "cc", "sp"], None).video == ("jl", "sp")
    assert program_for("jl", "jl", ["jl"], None).video == (None, None)
    assert program_for("cc", "jl", ["cc", "sp"], None).video == ("sp", None)  # host not here yet
