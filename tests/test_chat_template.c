/* Chat templates: the real templates of Llama 2/3, Mistral, ChatML/Qwen2,
 * Phi-3, Gemma, DeepSeek (and a few more) rendered for one conversation
 * must equal the expected renders published with llama.cpp's
 * tests/test-chat-template.cpp (Jinja column; llama.cpp drops a leading BOS
 * there, so we do too before comparing); each built-in name renders like its
 * real template; and unit tests of the language, its errors and its limits. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dizuo/chat.h"
#include "dztest.h"

static const dz_chat_message conversation[] = {
    {"system", "You are a helpful assistant"}, {"user", "Hello"},
    {"assistant", "Hi there"},                 {"user", "Who are you"},
    {"assistant", "   I am an assistant   "},  {"user", "Another question"},
};
enum { N_CONV = sizeof conversation / sizeof *conversation };

typedef struct real_case {
    const char *name, *source, *expected, *bos, *eos;
} real_case;

/* Template sources and expected outputs: public facts (the models'
 * tokenizer_config.json; llama.cpp tests/test-chat-template.cpp). */
static const real_case real_cases[] = {
    {"ChatML (OpenHermes-2.5)",
     "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
     "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n<|im_start|>assistant\n",
     "", ""},
    {"Mistral-7B-Instruct-v0.2",
     "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}",
     "[INST] You are a helpful assistant\nHello [/INST]Hi there</s>[INST] Who are you [/INST]   I am an assistant   </s>[INST] Another question [/INST]",
     "<s>", "</s>"},
    {"Vigogne-2 (Llama 2 style)",
     "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% elif true == true and not '<<SYS>>' in messages[0]['content'] %}{% set loop_messages = messages %}{% set system_message = 'Vous êtes Vigogne, un assistant IA créé par Zaion Lab. Vous suivez extrêmement bien les instructions. Aidez autant que vous le pouvez.' %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'system' %}{{ '<<SYS>>\\n' + content.strip() + '\\n<</SYS>>\\n\\n' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",
     "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there </s>[INST] Who are you [/INST] I am an assistant </s>[INST] Another question [/INST]",
     "", "</s>"},
    {"Gemma-7b-it",
     "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}",
     "<start_of_turn>user\nYou are a helpful assistant\nHello<end_of_turn>\n<start_of_turn>model\nHi there<end_of_turn>\n<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\nI am an assistant<end_of_turn>\n<start_of_turn>user\nAnother question<end_of_turn>\n<start_of_turn>model\n",
     "", ""},
    {"DeepSeek-Coder",
     "{% if not add_generation_prompt is defined %}\n{% set add_generation_prompt = false %}\n{% endif %}\n{%- set ns = namespace(found=false) -%}\n{%- for message in messages -%}\n    {%- if message['role'] == 'system' -%}\n        {%- set ns.found = true -%}\n    {%- endif -%}\n{%- endfor -%}\n{{bos_token}}{%- if not ns.found -%}\n{{'You are an AI programming assistant, utilizing the Deepseek Coder model, developed by Deepseek Company, and you only answer questions related to computer science. For politically sensitive questions, security and privacy issues, and other non-computer science questions, you will refuse to answer\\n'}}\n{%- endif %}\n{%- for message in messages %}\n    {%- if message['role'] == 'system' %}\n{{ message['content'] }}\n    {%- else %}\n        {%- if message['role'] == 'user' %}\n{{'### Instruction:\\n' + message['content'] + '\\n'}}\n        {%- else %}\n{{'### Response:\\n' + message['content'] + '\\n<|EOT|>\\n'}}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n{% if add_generation_prompt %}\n{{'### Response:'}}\n{% endif %}",
     "You are a helpful assistant### Instruction:\nHello\n### Response:\nHi there\n<|EOT|>\n### Instruction:\nWho are you\n### Response:\n   I am an assistant   \n<|EOT|>\n### Instruction:\nAnother question\n### Response:\n",
     "", ""},
    {"Command-R-plus",
     "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% elif false == true %}{% set loop_messages = messages %}{% set system_message = 'You are Command-R, a brilliant, sophisticated, AI-assistant trained to assist human users by providing thorough responses. You are trained by Cohere.' %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% if system_message != false %}{{ '<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>' + system_message + '<|END_OF_TURN_TOKEN|>' }}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% set content = message['content'] %}{% if message['role'] == 'user' %}{{ '<|START_OF_TURN_TOKEN|><|USER_TOKEN|>' + content.strip() + '<|END_OF_TURN_TOKEN|>' }}{% elif message['role'] == 'assistant' %}{{ '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>'  + content.strip() + '<|END_OF_TURN_TOKEN|>' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>' }}{% endif %}",
     "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>You are a helpful assistant<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hello<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>Hi there<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|USER_TOKEN|>Who are you<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>I am an assistant<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|USER_TOKEN|>Another question<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
     "", ""},
    {"Llama-3",
     "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}",
     "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
     "", ""},
    {"Phi-3-mini",
     "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' + '\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n'}}{% endif %}{% endfor %}",
     "<|user|>\nYou are a helpful assistant\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n<|user|>\nWho are you<|end|>\n<|assistant|>\n   I am an assistant   <|end|>\n<|user|>\nAnother question<|end|>\n<|assistant|>\n",
     "", ""},
    {"Phi-3-small",
     "{{ bos_token }}{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}",
     "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n<|user|>\nWho are you<|end|>\n<|assistant|>\n   I am an assistant   <|end|>\n<|user|>\nAnother question<|end|>\n<|assistant|>\n",
     "", ""},
    {"Phi-3-medium",
     "{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' + '\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n'}}{% endif %}{% endfor %}",
     "<|user|>\nYou are a helpful assistant\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n<|user|>\nWho are you<|end|>\n<|assistant|>\n   I am an assistant   <|end|>\n<|user|>\nAnother question<|end|>\n<|assistant|>\n",
     "", ""},
    {"Phi-3-vision",
     "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>\n' }}{% endfor %}{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}{{- '<|assistant|>\n' -}}{% endif %}",
     "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n<|user|>\nWho are you<|end|>\n<|assistant|>\n   I am an assistant   <|end|>\n<|user|>\nAnother question<|end|>\n<|assistant|>\n",
     "", ""},
    {"DeepSeek-V2",
     "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\n\n' }}{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == 'system' %}{{ message['content'] + '\n\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}",
     u8"You are a helpful assistant\n\nUser: Hello\n\nAssistant: Hi there<｜end▁of▁sentence｜>User: Who are you\n\nAssistant:    I am an assistant   <｜end▁of▁sentence｜>User: Another question\n\nAssistant:",
     "", "<｜end▁of▁sentence｜>"},
    {"Granite-3.0",
     "{%- if tools %}\n    {{- '<|start_of_role|>available_tools<|end_of_role|>\n' }}\n    {%- for tool in tools %}\n    {{- tool | tojson(indent=4) }}\n    {%- if not loop.last %}\n        {{- '\n\n' }}\n    {%- endif %}\n    {%- endfor %}\n    {{- '<|end_of_text|>\n' }}\n{%- endif %}\n{%- for message in messages %}\n    {%- if message['role'] == 'system' %}\n    {{- '<|start_of_role|>system<|end_of_role|>' + message['content'] + '<|end_of_text|>\n' }}\n    {%- elif message['role'] == 'user' %}\n    {{- '<|start_of_role|>user<|end_of_role|>' + message['content'] + '<|end_of_text|>\n' }}\n    {%- elif message['role'] == 'assistant' %}\n    {{- '<|start_of_role|>assistant<|end_of_role|>'  + message['content'] + '<|end_of_text|>\n' }}\n    {%- elif message['role'] == 'assistant_tool_call' %}\n    {{- '<|start_of_role|>assistant<|end_of_role|><|tool_call|>' + message['content'] + '<|end_of_text|>\n' }}\n    {%- elif message['role'] == 'tool_response' %}\n    {{- '<|start_of_role|>tool_response<|end_of_role|>' + message['content'] + '<|end_of_text|>\n' }}\n    {%- endif %}\n    {%- if loop.last and add_generation_prompt %}\n    {{- '<|start_of_role|>assistant<|end_of_role|>' }}\n    {%- endif %}\n{%- endfor %}",
     "<|start_of_role|>system<|end_of_role|>You are a helpful assistant<|end_of_text|>\n<|start_of_role|>user<|end_of_role|>Hello<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>Hi there<|end_of_text|>\n<|start_of_role|>user<|end_of_role|>Who are you<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>   I am an assistant   <|end_of_text|>\n<|start_of_role|>user<|end_of_role|>Another question<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>",
     "", ""},
    {"Mistral-Large-2407 (v3)",
     "{%- if messages[0][\"role\"] == \"system\" %}\n    {%- set system_message = messages[0][\"content\"] %}\n    {%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif %}\n{%- if not tools is defined %}\n    {%- set tools = none %}\n{%- endif %}\n{%- set user_messages = loop_messages | selectattr(\"role\", \"equalto\", \"user\") | list %}\n\n{#- This block checks for alternating user/assistant messages, skipping tool calling messages #}\n{%- set ns = namespace() %}\n{%- set ns.index = 0 %}\n{%- for message in loop_messages %}\n    {%- if not (message.role == \"tool\" or message.role == \"tool_results\" or (message.tool_calls is defined and message.tool_calls is not none)) %}\n        {%- if (message[\"role\"] == \"user\") != (ns.index % 2 == 0) %}\n            {{- raise_exception(\"After the optional system message, conversation roles must alternate user/assistant/user/assistant/...\") }}\n        {%- endif %}\n        {%- set ns.index = ns.index + 1 %}\n    {%- endif %}\n{%- endfor %}\n\n{{- bos_token }}\n{%- for message in loop_messages %}\n    {%- if message[\"role\"] == \"user\" %}\n        {%- if tools is not none and (message == user_messages[-1]) %}\n            {{- \"[AVAILABLE_TOOLS] [\" }}\n            {%- for tool in tools %}\n                {%- set tool = tool.function %}\n                {{- '{\"type\": \"function\", \"function\": {' }}\n                {%- for key, val in tool.items() if key != \"return\" %}\n                    {%- if val is string %}\n                        {{- '\"' + key + '\": \"' + val + '\"' }}\n                    {%- else %}\n                        {{- '\"' + key + '\": ' + val|tojson }}\n                    {%- endif %}\n                    {%- if not loop.last %}\n                        {{- \", \" }}\n                    {%- endif %}\n                {%- endfor %}\n                {{- \"}}\" }}\n                {%- if not loop.last %}\n                    {{- \", \" }}\n                {%- else %}\n                    {{- \"]\" }}\n                {%- endif %}\n            {%- endfor %}\n            {{- \"[/AVAILABLE_TOOLS]\" }}\n            {%- endif %}\n        {%- if loop.last and system_message is defined %}\n            {{- \"[INST] \" + system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" }}\n        {%- else %}\n            {{- \"[INST] \" + message[\"content\"] + \"[/INST]\" }}\n        {%- endif %}\n    {%- elif message.tool_calls is defined and message.tool_calls is not none %}\n        {{- \"[TOOL_CALLS] [\" }}\n        {%- for tool_call in message.tool_calls %}\n            {%- set out = tool_call.function|tojson %}\n            {{- out[:-1] }}\n            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}\n                {{- raise_exception(\"Tool call IDs should be alphanumeric strings with length 9!\") }}\n            {%- endif %}\n            {{- ', \"id\": \"' + tool_call.id + '\"}' }}\n            {%- if not loop.last %}\n                {{- \", \" }}\n            {%- else %}\n                {{- \"]\" + eos_token }}\n            {%- endif %}\n        {%- endfor %}\n    {%- elif message[\"role\"] == \"assistant\" %}\n        {{- \" \" + message[\"content\"]|trim + eos_token}}\n    {%- elif message[\"role\"] == \"tool_results\" or message[\"role\"] == \"tool\" %}\n        {%- if message.content is defined and message.content.content is defined %}\n            {%- set content = message.content.content %}\n        {%- else %}\n            {%- set content = message.content %}\n        {%- endif %}\n        {{- '[TOOL_RESULTS] {\"content\": ' + content|string + \", \" }}\n        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}\n            {{- raise_exception(\"Tool call IDs should be alphanumeric strings with length 9!\") }}\n        {%- endif %}\n        {{- '\"call_id\": \"' + message.tool_call_id + '\"}[/TOOL_RESULTS]' }}\n    {%- else %}\n        {{- raise_exception(\"Only user and assistant roles are supported, with the exception of an initial optional system message!\") }}\n    {%- endif %}\n{%- endfor %}\n",
     "[INST] Hello[/INST] Hi there</s>[INST] Who are you[/INST] I am an assistant</s>[INST] You are a helpful assistant\n\nAnother question[/INST]",
     "", "</s>"},
    {"Mistral-Nemo-2407 (v3-tekken)",
     "{%- if messages[0][\"role\"] == \"system\" %}\n    {%- set system_message = messages[0][\"content\"] %}\n    {%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif %}\n{%- if not tools is defined %}\n    {%- set tools = none %}\n{%- endif %}\n{%- set user_messages = loop_messages | selectattr(\"role\", \"equalto\", \"user\") | list %}\n\n{#- This block checks for alternating user/assistant messages, skipping tool calling messages #}\n{%- set ns = namespace() %}\n{%- set ns.index = 0 %}\n{%- for message in loop_messages %}\n    {%- if not (message.role == \"tool\" or message.role == \"tool_results\" or (message.tool_calls is defined and message.tool_calls is not none)) %}\n        {%- if (message[\"role\"] == \"user\") != (ns.index % 2 == 0) %}\n            {{- raise_exception(\"After the optional system message, conversation roles must alternate user/assistant/user/assistant/...\") }}\n        {%- endif %}\n        {%- set ns.index = ns.index + 1 %}\n    {%- endif %}\n{%- endfor %}\n\n{{- bos_token }}\n{%- for message in loop_messages %}\n    {%- if message[\"role\"] == \"user\" %}\n        {%- if tools is not none and (message == user_messages[-1]) %}\n            {{- \"[AVAILABLE_TOOLS][\" }}\n            {%- for tool in tools %}\n                {%- set tool = tool.function %}\n                {{- '{\"type\": \"function\", \"function\": {' }}\n                {%- for key, val in tool.items() if key != \"return\" %}\n                    {%- if val is string %}\n                        {{- '\"' + key + '\": \"' + val + '\"' }}\n                    {%- else %}\n                        {{- '\"' + key + '\": ' + val|tojson }}\n                    {%- endif %}\n                    {%- if not loop.last %}\n                        {{- \", \" }}\n                    {%- endif %}\n                {%- endfor %}\n                {{- \"}}\" }}\n                {%- if not loop.last %}\n                    {{- \", \" }}\n                {%- else %}\n                    {{- \"]\" }}\n                {%- endif %}\n            {%- endfor %}\n            {{- \"[/AVAILABLE_TOOLS]\" }}\n            {%- endif %}\n        {%- if loop.last and system_message is defined %}\n            {{- \"[INST]\" + system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" }}\n        {%- else %}\n            {{- \"[INST]\" + message[\"content\"] + \"[/INST]\" }}\n        {%- endif %}\n    {%- elif (message.tool_calls is defined and message.tool_calls is not none) %}\n        {{- \"[TOOL_CALLS][\" }}\n        {%- for tool_call in message.tool_calls %}\n            {%- set out = tool_call.function|tojson %}\n            {{- out[:-1] }}\n            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}\n                {{- raise_exception(\"Tool call IDs should be alphanumeric strings with length 9!\") }}\n            {%- endif %}\n            {{- ', \"id\": \"' + tool_call.id + '\"}' }}\n            {%- if not loop.last %}\n                {{- \", \" }}\n            {%- else %}\n                {{- \"]\" + eos_token }}\n            {%- endif %}\n        {%- endfor %}\n    {%- elif message[\"role\"] == \"assistant\" %}\n        {{- message[\"content\"] + eos_token}}\n    {%- elif message[\"role\"] == \"tool_results\" or message[\"role\"] == \"tool\" %}\n        {%- if message.content is defined and message.content.content is defined %}\n            {%- set content = message.content.content %}\n        {%- else %}\n            {%- set content = message.content %}\n        {%- endif %}\n        {{- '[TOOL_RESULTS]{\"content\": ' + content|string + \", \" }}\n        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}\n            {{- raise_exception(\"Tool call IDs should be alphanumeric strings with length 9!\") }}\n        {%- endif %}\n        {{- '\"call_id\": \"' + message.tool_call_id + '\"}[/TOOL_RESULTS]' }}\n    {%- else %}\n        {{- raise_exception(\"Only user and assistant roles are supported, with the exception of an initial optional system message!\") }}\n    {%- endif %}\n{%- endfor %}\n",
     "[INST]Hello[/INST]Hi there</s>[INST]Who are you[/INST]   I am an assistant   </s>[INST]You are a helpful assistant\n\nAnother question[/INST]",
     "", "</s>"},
    {"Mistral-Large-2411 (v7)",
     "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + '[/INST]' }}{% elif message['role'] == 'system' %}{{ '[SYSTEM_PROMPT] ' + message['content'] + '[/SYSTEM_PROMPT]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token }}{% else %}{{ raise_exception('Only user, system and assistant roles are supported!') }}{% endif %}{% endfor %}",
     "[SYSTEM_PROMPT] You are a helpful assistant[/SYSTEM_PROMPT][INST] Hello[/INST] Hi there</s>[INST] Who are you[/INST]    I am an assistant   </s>[INST] Another question[/INST]",
     "", "</s>"},
    /* meta-llama/Llama-2-7b-chat-hf; expected output written out by hand from the template. */
    {"Llama-2-chat",
     "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",
     "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there </s><s>[INST] Who are you [/INST] I am an assistant </s><s>[INST] Another question [/INST]",
     "<s>", "</s>"},
    /* Qwen/Qwen2-7B-Instruct; with a system message it renders as ChatML. */
    {"Qwen2",
     "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
     "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n<|im_start|>assistant\n",
     "", ""},
};

static char *render_conv(const dz_chat_template *t, const char *bos, const char *eos) {
    dz_chat_render_opts o = {.add_generation_prompt = true, .bos_token = bos, .eos_token = eos};
    char *out = NULL;
    size_t len = 0;
    DZT_OK(dz_chat_template_render(t, conversation, N_CONV, &o, &out, &len));
    if (out) DZT_EQ_INT(strlen(out), len);
    return out;
}

static const char *skip_bos(const char *s, const char *bos) {
    size_t n = bos ? strlen(bos) : 0;
    return s && n && strncmp(s, bos, n) == 0 ? s + n : s;
}

static void test_real_templates(void) {
    for (size_t i = 0; i < sizeof real_cases / sizeof *real_cases; i++) {
        const real_case *rc = &real_cases[i];
        dz_chat_template *t = NULL;
        dz_status s = dz_chat_template_parse(rc->source, strlen(rc->source), &t);
        DZT_CHECK(s == DZ_OK, "%s: parse: %s", rc->name, dz_last_error());
        if (s) continue;
        char *out = render_conv(t, rc->bos, rc->eos);
        DZT_CHECK(out && strcmp(skip_bos(out, rc->bos), rc->expected) == 0, "%s:\n got: [%s]\nwant: [%s]", rc->name,
                  out ? out : dz_last_error(), rc->expected);
        free(out);
        dz_chat_template_destroy(t);
    }
}

static const real_case *find_case(const char *name) {
    for (size_t i = 0; i < sizeof real_cases / sizeof *real_cases; i++)
        if (!strcmp(real_cases[i].name, name)) return &real_cases[i];
    return NULL;
}

static void test_builtins(void) {
    static const struct { const char *builtin, *real; } pairs[] = {
        {"llama2", "Llama-2-chat"},   {"llama3", "Llama-3"}, {"mistral", "Mistral-7B-Instruct-v0.2"},
        {"chatml", "ChatML (OpenHermes-2.5)"}, {"qwen2", "ChatML (OpenHermes-2.5)"},
        {"phi3", "Phi-3-mini"},       {"gemma", "Gemma-7b-it"}, {"deepseek", "DeepSeek-Coder"},
    };
    size_t n = 0;
    const char *const *names = dz_chat_template_builtin_names(&n);
    DZT_EQ_INT(n, sizeof pairs / sizeof *pairs);
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        DZT_EQ_STR(names[i], pairs[i].builtin);
        const real_case *rc = find_case(pairs[i].real);
        dz_chat_template *t = NULL;
        DZT_OK(dz_chat_template_builtin(pairs[i].builtin, &t));
        if (!t || !rc) continue;
        char *out = render_conv(t, rc->bos, rc->eos);
        DZT_CHECK(out && strcmp(skip_bos(out, rc->bos), rc->expected) == 0, "builtin %s:\n got: [%s]\nwant: [%s]",
                  pairs[i].builtin, out ? out : dz_last_error(), rc->expected);
        free(out);
        dz_chat_template_destroy(t);
    }
    dz_chat_template *t = NULL;
    DZT_FAILS(dz_chat_template_builtin("vicuna", &t), DZ_ERR_ARG);
    DZT_ASSERT(strstr(dz_last_error(), "vicuna") && strstr(dz_last_error(), "llama3") && strstr(dz_last_error(), "gemma"));
    DZT_ASSERT(t == NULL);
    /* Model selection: the GGUF template wins; none -> fallback; bad one -> error naming the key. */
    DZT_OK(dz_chat_template_for_model(NULL, "gemma", &t));
    DZT_ASSERT(t && !dz_chat_template_supports_system(t));
    dz_chat_template_destroy(t);
    t = NULL;
    DZT_OK(dz_chat_template_for_model("", NULL, &t));
    DZT_ASSERT(t && dz_chat_template_supports_system(t));
    dz_chat_template_destroy(t);
    t = NULL;
    DZT_OK(dz_chat_template_for_model("{{ messages[0].content }}", "gemma", &t));
    char *out = NULL;
    size_t len;
    dz_chat_message one = {"user", "hi"};
    DZT_OK(dz_chat_template_render(t, &one, 1, NULL, &out, &len));
    DZT_EQ_STR(out, "hi");
    free(out);
    dz_chat_template_destroy(t);
    t = NULL;
    DZT_FAILS(dz_chat_template_for_model("{% if %}", "gemma", &t), DZ_ERR_FORMAT);
    DZT_ASSERT(strstr(dz_last_error(), "tokenizer.chat_template") != NULL);
    DZT_ASSERT(t == NULL);
    dz_chat_template_destroy(NULL);
}

/* Renders src with messages [user "Hi"] and add_generation_prompt = true. */
static char *run(const char *src, dz_status *st) {
    dz_chat_template *t = NULL;
    dz_chat_message msgs[] = {{"user", " Hi "}, {"assistant", "Yo"}};
    dz_chat_render_opts o = {.add_generation_prompt = true, .bos_token = "<s>", .eos_token = "</s>",
                             .no_system_merge = true, .max_output = 4096, .max_iterations = 1000,
                             .max_memory = 1 << 20};
    *st = dz_chat_template_parse(src, strlen(src), &t);
    if (*st) return NULL;
    char *out = NULL;
    size_t len;
    *st = dz_chat_template_render(t, msgs, 2, &o, &out, &len);
    dz_chat_template_destroy(t);
    return out;
}

static void expect(const char *src, const char *want) {
    dz_status st;
    char *out = run(src, &st);
    DZT_CHECK(st == DZ_OK && out && strcmp(out, want) == 0, "template %s\n got: [%s]\nwant: [%s]", src,
              out ? out : dz_last_error(), want);
    free(out);
}

static void expect_error(const char *src, dz_status want, const char *fragment) {
    dz_status st;
    char *out = run(src, &st);
    DZT_CHECK(st == want && out == NULL && strstr(dz_last_error(), fragment), "template %.200s: status %s, message '%s' (want '%s')",
              src, dz_status_str(st), dz_last_error(), fragment);
    free(out);
}

static void test_language(void) {
    /* literals, printing as Python does */
    expect("{{ 1 }} {{ 1.5 }} {{ 2.0 }} {{ 1e20 }} {{ none }} {{ true }} {{ 'a' \"b\" }}", "1 1.5 2.0 1e+20 None True ab");
    expect("{{ [1, 'a', none] }} {{ {'k': [true]} }}", "[1, 'a', None] {'k': [True]}");
    /* arithmetic, precedence, concatenation */
    expect("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }}",
           "7 9 3 -4 2 3.5 1024");
    expect("{{ 'a' ~ 1 ~ none }} {{ 'ab' * 3 }} {{ [1] + [2] }}", "a1None ababab [1, 2]");
    /* comparisons and logic */
    expect("{{ 1 < 2 and 'b' > 'a' }} {{ not 1 == 1 }} {{ 'x' in 'axb' }} {{ 3 not in [1, 2] }} {{ 0 or 'd' }}",
           "True False True True d");
    expect("{{ 'yes' if messages|length > 1 else 'no' }}|{{ 'x' if false }}|", "yes||");
    /* attribute and subscript access, slices, negative indices */
    expect("{{ messages[0].role }} {{ messages[-1]['content'] }} {{ messages[1:]|length }} {{ 'hello'[1:3] }} "
           "{{ 'hello'[::-1] }} {{ [1,2,3][-2] }} {{ messages[5] is defined }}",
           "user Yo 1 el olleh 2 False");
    /* tests */
    expect("{{ x is defined }} {{ none is none }} {{ 'a' is string }} {{ {} is mapping }} {{ 3 is odd }} "
           "{{ 4 is divisibleby 2 }} {{ 1 is not string }} {{ 'ab' is lower }}",
           "False True True True True True True True");
    /* filters */
    expect("[{{ messages[0].content|trim }}] {{ 'abc'|length }} {{ 'ab'|upper }} {{ 'AB'|lower }} "
           "{{ 'hello world'|capitalize }} {{ 'hello world'|title }}",
           "[Hi] 3 AB ab Hello world Hello World");
    expect("{{ x|default('d') }} {{ ''|default('e', true) }} {{ [1,2]|join('-') }} {{ [1,2]|first }} {{ [1,2]|last }}",
           "d e 1-2 1 2");
    expect("{{ 'aXbX'|replace('X', '.') }} {{ 3|string ~ 'x' }} {{ '42'|int + 1 }} {{ 'ab'|list }} "
           "{{ {'a': 1}|items|list }}",
           "a.b. 3x 43 ['a', 'b'] [['a', 1]]");
    expect("{{ {'a': [1, 'x\"'], 'b': none}|tojson }}", "{\"a\": [1, \"x\\\"\"], \"b\": null}");
    expect("{{ {'a': [1]}|tojson(indent=2) }}", "{\n  \"a\": [\n    1\n  ]\n}");
    expect("{{ messages|selectattr('role', 'equalto', 'user')|list|length }} "
           "{{ messages|rejectattr('role', 'equalto', 'user')|map(attribute='content')|join }}",
           "1 Yo");
    /* methods */
    expect("[{{ ' a '.strip() }}][{{ 'xxa'.lstrip('x') }}][{{ ' a '.rstrip() }}] {{ 'abc'.startswith('ab') }} "
           "{{ 'abc'.endswith(('x', 'c')) }} {{ 'a,b'.split(',') }} {{ ' a  b '.split() }} {{ 'Ab'.upper() }}",
           "[a][a][ a] True True ['a', 'b'] ['a', 'b'] AB");
    expect("{{ {'a': 1}.get('a') }} {{ {'a': 1}.get('b', 2) }} {% for k, v in {'x': 1}.items() %}{{ k }}={{ v }}{% endfor %}",
           "1 2 x=1");
    /* loops: loop variables, else, filter, break/continue, scoping */
    expect("{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}",
           "10TrueFalse2;21FalseTrue2;");
    expect("{% for x in [] %}a{% else %}empty{% endfor %}", "empty");
    expect("{% for x in range(10) if x is even %}{{ x }}{{ ',' if not loop.last }}{% endfor %}", "0,2,4,6,8");
    expect("{% for x in range(5) %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}",
           "02");
    expect("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}", "21");
    expect("{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}", "3");
    expect("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c %}x{{ a }}{% endset %}{{ c }}", "12x1");
    expect("{% if false %}a{% elif 0 %}b{% elif 1 %}c{% else %}d{% endif %}", "c");
    /* whitespace control, trim_blocks, lstrip_blocks, comments, trailing newline */
    expect("a  {{- ' b ' -}}  c", "a b c");
    expect("{% if true %}\nx\n{% endif %}\ny\n", "x\ny");
    expect("  {% if true %}\n  x\n  {% endif %}\n", "  x\n");
    expect("a {# note #}b{#- x -#} c", "a bc");
    expect("a\n  {%+ if true %}b{% endif +%}\nc", "a\n  b\nc");
    expect("{{ bos_token }}{{ eos_token }}{{ add_generation_prompt }}", "<s></s>True");
    /* macros (with defaults and keywords), filter blocks, sequence filters on none */
    expect("{% macro tag(name, body='-') %}<{{ name }}>{{ body }}{% endmacro %}{{ tag('a') }}{{ tag('b', body='x') }}",
           "<a>-<b>x");
    expect("{% filter upper %}ab{{ 'c' }}{% endfilter %}|{{ none|selectattr('x')|list }}", "ABC|[]");
    expect("{{ '{{ not a tag }}' }}{{ {'a': {'b': 1}}['a']['b'] }}", "{{ not a tag }}1");
}

static void test_errors(void) {
    expect_error("{{ raise_exception('Roles must alternate') }}", DZ_ERR_FORMAT, "Roles must alternate");
    expect_error("x\n{% if true %}", DZ_ERR_FORMAT, "line 2");
    expect_error("{% if true %}", DZ_ERR_FORMAT, "endif");
    expect_error("{% for x in y %}", DZ_ERR_FORMAT, "endfor");
    expect_error("{{ 1 + }}", DZ_ERR_FORMAT, "expected an expression");
    expect_error("{{ 'abc }}", DZ_ERR_FORMAT, "unterminated string");
    expect_error("{{ 1", DZ_ERR_FORMAT, "unclosed");
    expect_error("{# x", DZ_ERR_FORMAT, "unclosed comment");
    expect_error("{% call m() %}{% endcall %}", DZ_ERR_FORMAT, "unsupported statement");
    expect_error("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", DZ_ERR_FORMAT, "takes 1 arguments");
    expect_error("{% macro m(a) %}{% endmacro %}{{ m(b=2) }}", DZ_ERR_FORMAT, "no parameter 'b'");
    expect_error("{% frobnicate %}", DZ_ERR_FORMAT, "unknown statement");
    expect_error("{{ x|nosuchfilter }}", DZ_ERR_FORMAT, "unknown filter 'nosuchfilter'");
    expect_error("{{ 1 is nosuchtest }}", DZ_ERR_FORMAT, "unknown test");
    expect_error("{{ 'a' + 1 }}", DZ_ERR_FORMAT, "unsupported operand types for '+': string and integer");
    expect_error("{{ 1 / 0 }}", DZ_ERR_FORMAT, "division by zero");
    expect_error("{{ 9223372036854775807 + 1 }}", DZ_ERR_FORMAT, "integer overflow");
    expect_error("{{ x() }}", DZ_ERR_FORMAT, "unknown function 'x'");
    expect_error("{{ messages.append(1) }}", DZ_ERR_FORMAT, "not allowed");
    expect_error("{% set x = 1 %}{% set x.y = 2 %}", DZ_ERR_FORMAT, "not a namespace");
    expect_error("{{ 1 < 'a' }}", DZ_ERR_FORMAT, "cannot order");
    expect_error("{% for x in 5 %}{% endfor %}", DZ_ERR_FORMAT, "cannot loop over integer");
}

static void test_limits(void) {
    expect_error("{% for i in range(2000) %}{% endfor %}", DZ_ERR_UNSUPPORTED, "loop limit");
    expect_error("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", DZ_ERR_UNSUPPORTED,
                 "iterations");
    expect_error("{% for i in range(900) %}{{ 'xxxxxxxxxx' }}{% endfor %}", DZ_ERR_UNSUPPORTED, "output exceeded");
    expect_error("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
                 DZ_ERR_UNSUPPORTED, "memory limit");
    /* deep nesting: brackets, blocks, operator chains */
    char deep[4096];
    size_t k = 0;
    k += (size_t)snprintf(deep + k, sizeof deep - k, "{{ ");
    for (int i = 0; i < 200; i++) deep[k++] = '(';
    deep[k++] = '1';
    for (int i = 0; i < 200; i++) deep[k++] = ')';
    snprintf(deep + k, sizeof deep - k, " }}");
    expect_error(deep, DZ_ERR_FORMAT, "nested too deeply");
    k = 0;
    for (int i = 0; i < 100; i++) k += (size_t)snprintf(deep + k, sizeof deep - k, "{%% if 1 %%}");
    expect_error(deep, DZ_ERR_FORMAT, "nested too deeply");
    char *chain = malloc(200000);
    k = (size_t)sprintf(chain, "{{ 1");
    for (int i = 0; i < 30000; i++) k += (size_t)sprintf(chain + k, "+1");
    sprintf(chain + k, " }}");
    expect_error(chain, DZ_ERR_FORMAT, "nested too deeply");
    free(chain);
    expect_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", DZ_ERR_UNSUPPORTED, "nested too deeply");
    /* self-reference cannot hang the printer */
    dz_status st;
    char *out = run("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns|string|length > 0 }}", &st);
    DZT_CHECK(st == DZ_OK && out && !strcmp(out, "True"), "self reference: %s", out ? out : dz_last_error());
    free(out);
}

static void test_system_merge(void) {
    /* Gemma raises on a system message; by default the system text is merged
     * into the first user turn (as llama.cpp does); asked not to, it raises. */
    dz_chat_template *t = NULL;
    DZT_OK(dz_chat_template_builtin("gemma", &t));
    dz_chat_render_opts o = {.no_system_merge = true};
    char *out = NULL;
    size_t len;
    DZT_FAILS(dz_chat_template_render(t, conversation, N_CONV, &o, &out, &len), DZ_ERR_FORMAT);
    DZT_EQ_STR(dz_last_error(), "System role not supported");
    DZT_ASSERT(out == NULL);
    dz_chat_message only_sys[] = {{"system", "S"}};
    DZT_OK(dz_chat_template_render(t, only_sys, 1, NULL, &out, &len));
    DZT_EQ_STR(out, "<start_of_turn>user\nS<end_of_turn>\n");
    free(out);
    out = NULL;
    DZT_OK(dz_chat_template_render(t, NULL, 0, NULL, &out, &len));
    DZT_EQ_STR(out, "");
    free(out);
    dz_chat_message bad[] = {{NULL, "x"}};
    out = NULL;
    DZT_FAILS(dz_chat_template_render(t, bad, 1, NULL, &out, &len), DZ_ERR_ARG);
    DZT_ASSERT(out == NULL);
    dz_chat_template_destroy(t);
}

/* One template rendered from several threads at once gives the same text. */
typedef struct thread_job {
    const dz_chat_template *t;
    const char *want;
    int mismatches;
} thread_job;

static void *render_many(void *arg) {
    thread_job *job = arg;
    dz_chat_render_opts o = {.add_generation_prompt = true};
    for (int i = 0; i < 200; i++) {
        char *out = NULL;
        size_t len;
        if (dz_chat_template_render(job->t, conversation, N_CONV, &o, &out, &len) || strcmp(out, job->want))
            job->mismatches++;
        free(out);
    }
    return NULL;
}

static void test_threads(void) {
    dz_chat_template *t = NULL;
    DZT_OK(dz_chat_template_builtin("llama3", &t));
    if (!t) return;
    const real_case *rc = find_case("Llama-3");
    thread_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (thread_job){t, rc->expected, 0};
        DZT_EQ_INT(pthread_create(&th[i], NULL, render_many, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        DZT_EQ_INT(jobs[i].mismatches, 0);
    }
    dz_chat_template_destroy(t);
}

int main(void) {
    test_real_templates();
    test_builtins();
    test_language();
    test_errors();
    test_limits();
    test_system_merge();
    test_threads();
    return dzt_done();
}
