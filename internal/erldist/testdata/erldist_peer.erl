%% Helpers that erldist's interop tests run on a real Erlang node.
-module(erldist_peer).
-export([start_echo/0, echo/0, start_collector/1, collector/2, collected/1,
         exit_with/1, exit_after/2, big/1, big_tuple/1, atoms/1,
         sleep_forever/0, wait_down/2, wait_exit/2, spawn_req/4,
         spawn_req/5, roundtrip/3]).

%% echo: registered as echo; answers {From, Msg} with {echo, Msg} and
%% {From, Ref, Msg} with {Ref, Msg}.
start_echo() ->
    Pid = spawn(fun echo/0),
    register(echo, Pid),
    Pid.

echo() ->
    receive
        {From, Ref, Msg} when is_pid(From) -> From ! {Ref, Msg};
        {From, Msg} when is_pid(From) -> From ! {echo, Msg};
        _ -> ok
    end,
    echo().

%% collector: registered as Name, keeps what it receives in order;
%% collected(Name) returns the list so far.
start_collector(Name) ->
    Pid = spawn(fun() -> collector(Name, []) end),
    register(Name, Pid),
    Pid.

collector(Name, Acc) ->
    receive
        {'$collected', From} -> From ! {collected, lists:reverse(Acc)}, collector(Name, Acc);
        Msg -> collector(Name, [Msg | Acc])
    end.

collected(Name) ->
    Name ! {'$collected', self()},
    receive {collected, L} -> L after 10000 -> timeout end.

exit_with(Reason) -> exit(Reason).

exit_after(Ms, Reason) -> timer:sleep(Ms), exit(Reason).

sleep_forever() -> receive after infinity -> ok end.

%% A binary of N bytes whose content depends on N.
big(N) -> list_to_binary([I rem 251 || I <- lists:seq(1, N)]).

%% A tuple of about N bytes in the external format.
big_tuple(N) -> {big, [{I, <<I:32>>} || I <- lists:seq(1, N div 14)]}.

%% N distinct atoms.
atoms(N) -> [list_to_atom("erldist_atom_" ++ integer_to_list(I)) || I <- lists:seq(1, N)].

%% Waits for the DOWN of monitor Ref.
wait_down(Ref, Timeout) ->
    receive {'DOWN', Ref, process, _, Reason} -> {down, Reason}
    after Timeout -> timeout end.

%% Waits for an exit signal from Pid (the caller traps exits).
wait_exit(Pid, Timeout) ->
    receive {'EXIT', Pid, Reason} -> {exit, Reason}
    after Timeout -> timeout end.

%% spawn_request with Opts, then whatever comes for it within 5 s: the
%% reply, and then the DOWN or EXIT it asked for.
spawn_req(Node, M, F, A) -> spawn_req(Node, M, F, A, []).

spawn_req(Node, M, F, A, Opts) ->
    process_flag(trap_exit, true),
    Ref = spawn_request(Node, M, F, A, Opts),
    receive
        {spawn_reply, Ref, ok, Pid} ->
            Events = events(Ref, Pid, Opts, []),
            {ok, Pid, Events};
        {spawn_reply, Ref, error, Reason} -> {error, Reason}
    after 5000 -> timeout
    end.

events(Ref, Pid, Opts, Acc) ->
    Want = length([O || O <- Opts, O =:= monitor orelse O =:= link]),
    case length(Acc) of
        Want -> lists:reverse(Acc);
        _ ->
            receive
                {'DOWN', Ref, process, Pid, Reason} -> events(Ref, Pid, Opts, [{down, Reason} | Acc]);
                {'EXIT', Pid, Reason} -> events(Ref, Pid, Opts, [{exit, Reason} | Acc])
            after 5000 -> lists:reverse([timeout | Acc])
            end
    end.

%% N round trips to {Name, Node}: sends {self(), Ref, ping}, waits for
%% {Ref, ping}; returns microseconds per round trip.
roundtrip(Node, Name, N) ->
    T0 = erlang:monotonic_time(microsecond),
    lists:foreach(fun(_) ->
                          Ref = make_ref(),
                          {Name, Node} ! {self(), Ref, ping},
                          receive {Ref, ping} -> ok after 5000 -> exit(timeout) end
                  end, lists:seq(1, N)),
    (erlang:monotonic_time(microsecond) - T0) / N.
