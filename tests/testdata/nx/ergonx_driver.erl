%% The Erlang side of ergonx's interop tests: a process registered as
%% ergonx_driver on an Erlang node, through which a Go test runs calls on
%% that node and reads their results as terms.
%%
%%   {eval, From, Tag, Module, Function, Args}
%%       runs apply(Module, Function, Args) in a new process and sends
%%       From {Tag, {ok, Value}} | {Tag, {exit, Reason}} |
%%       {Tag, {error, Reason}} | {Tag, {throw, Value}}.
%%   {eval_async, From, Tag, Module, Function, Args}
%%       the same, but first sends From {Tag, started} once the call's
%%       process runs (to kill a node mid-call).
%%
%% start/0 also starts the pg scope Nx starts in its application.
-module(ergonx_driver).
-export([start/0, loop/0, seconds/1]).

start() ->
    {ok, _} = pg:start_link('Elixir.Nx.Serving.PG'),
    Pid = spawn(?MODULE, loop, []),
    register(ergonx_driver, Pid),
    io:format("DRIVER ~s~n", [node()]),
    Pid.

loop() ->
    receive
        {eval, From, Tag, M, F, A} ->
            spawn(fun() -> From ! {Tag, run(M, F, A)} end);
        {eval_async, From, Tag, M, F, A} ->
            spawn(fun() -> From ! {Tag, started}, From ! {Tag, run(M, F, A)} end);
        _ ->
            ok
    end,
    loop().

run(M, F, A) ->
    try {ok, apply(M, F, A)}
    catch
        exit:Reason -> {exit, Reason};
        error:Reason -> {error, Reason};
        throw:Value -> {throw, Value}
    end.

%% seconds(N): a call that takes N seconds (kill tests).
seconds(N) ->
    timer:sleep(N * 1000),
    ok.
