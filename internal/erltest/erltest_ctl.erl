%% erltest_ctl: the control process of an Erlang node started by Go's
%% internal/erltest. It reads requests from standard input, one a line:
%%
%%     <Id> <Base64 of an Erlang expression, without the final dot>
%%
%% evaluates each in a process of its own (so that a request may block
%% while others run), and answers on standard output, one a line:
%%
%%     @@erltest <Id> <Base64 of term_to_binary(Result)>
%%
%% where Result is {ok, Value} or {Class, Reason} for an exception. The
%% line "@@erltest ready" says the node is up. The node halts when
%% standard input closes.
-module(erltest_ctl).
-export([start/0]).

start() ->
    Ctl = spawn(fun() -> register(erltest_ctl, self()), loop() end),
    spawn(fun() -> reader(Ctl) end),
    ok.

reader(Ctl) ->
    case io:get_line(standard_io, "") of
        eof -> erlang:halt(0);
        {error, _} -> erlang:halt(0);
        Line -> Ctl ! {line, Line}, reader(Ctl)
    end.

loop() ->
    io:put_chars(standard_io, "@@erltest ready\n"),
    loop1().

loop1() ->
    receive
        {line, Line} ->
            Ctl = self(),
            spawn(fun() -> request(Ctl, Line) end),
            loop1();
        {result, Id, Result} ->
            Bin = term_to_binary(Result),
            io:put_chars(standard_io, ["@@erltest ", integer_to_list(Id), " ", base64:encode(Bin), "\n"]),
            loop1()
    end.

request(Ctl, Line) ->
    [IdText, Code] = string:split(string:trim(Line), " "),
    Id = list_to_integer(IdText),
    Text = binary_to_list(base64:decode(Code)) ++ ".",
    Result = try
                 {ok, Tokens, _} = erl_scan:string(Text),
                 {ok, Exprs} = erl_parse:parse_exprs(Tokens),
                 {value, Value, _} = erl_eval:exprs(Exprs, []),
                 {ok, Value}
             catch
                 Class:Reason -> {Class, Reason}
             end,
    Ctl ! {result, Id, Result}.
